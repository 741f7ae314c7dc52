package collector

import (
	"maps"
	"net/http"
	"slices"

	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/httpserve"
	"github.com/periscope-dev/periscope/api/openapi"
)

// Handler serves the collector's HTTP API: GET /api/v1/flows (from the
// ring, or with source=clickhouse from Options.History, as
// flowquery.Server answers it), GET /api/v1/status, GET /api/v1/endpoints
// and DELETE /api/v1/endpoints/{namespace}/{name} (RemoveEndpoint),
// GET /api/v1/namespaces (api.Namespaces), GET /api/v1/agent-events
// (agentevent.Handler over Events), GET /healthz, the API's OpenAPI document
// (GET /api/v1/openapi.json and .yaml), and Options.Handlers. The API's own
// patterns are more specific than a catch-all "GET /" in Options.Handlers
// (the web UI), so they win over it.
func (c *Collector) Handler() http.Handler {
	return httpserve.Mux(c.handlers())
}

// handlers are the collector's routes, by ServeMux pattern.
func (c *Collector) handlers() map[string]http.Handler {
	hs := openapi.Handlers(c.Routes)
	hs["GET /healthz"] = http.HandlerFunc(httpserve.Healthz)
	hs["GET /api/v1/status"] = http.HandlerFunc(c.serveStatus)
	hs["GET "+EndpointsPath] = http.HandlerFunc(c.serveEndpoints)
	hs["DELETE "+EndpointsPath+"/{namespace}/{name}"] = http.HandlerFunc(c.serveRemoveEndpoint)
	hs["GET /api/v1/namespaces"] = http.HandlerFunc(c.serveNamespaces)
	hs["GET "+agentevent.Path] = agentevent.Handler(c.events, c.log)
	hs["GET /api/v1/flows"] = &flowquery.Server{Ring: c.store, History: c.opts.History, Followers: c.follows, Log: c.log}
	maps.Copy(hs, c.opts.Handlers)
	return hs
}

// Routes are the ServeMux patterns the collector serves, sorted: its own
// and Options.Handlers (as they are now: the caller may add to them until
// Run).
func (c *Collector) Routes() []string { return slices.Sorted(maps.Keys(c.handlers())) }

func (c *Collector) serveStatus(w http.ResponseWriter, _ *http.Request) {
	httpserve.WriteJSON(w, http.StatusOK, c.Status())
}
