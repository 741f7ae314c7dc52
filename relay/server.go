package relay

import (
	"maps"
	"net/http"
	"slices"

	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/httpserve"
	"github.com/periscope-dev/periscope/api/openapi"
)

// Handler serves the relay's HTTP API, the collectors' API over all peers:
//
//   - GET /api/v1/flows with the collector's parameters (filter, last,
//     first, all, since, until, follow, source) and answer (NDJSON flows),
//     as flowquery.Server answers it from Ring and History. The response
//     declares the trailer X-Periscope-Partial (flowquery.PartialHeader);
//     when nodes are unreachable the header X-Periscope-Partial lists those
//     missing at the start and the trailer those missing at any time.
//   - GET /api/v1/status: Status as JSON.
//   - GET /api/v1/namespaces: every peer's namespaces (Namespaces), with
//     the X-Periscope-Partial header naming the peers that did not answer.
//   - GET /api/v1/agent-events: every peer's agent events (AgentEvents),
//     with the collector's parameters and answer.
//   - GET /healthz: "ok".
//   - GET /api/v1/openapi.json and .yaml: the API's OpenAPI document.
func (r *Relay) Handler() http.Handler {
	return httpserve.Mux(r.handlers())
}

// handlers are the relay's routes, by ServeMux pattern.
func (r *Relay) handlers() map[string]http.Handler {
	hs := openapi.Handlers(r.Routes)
	hs["GET /healthz"] = http.HandlerFunc(httpserve.Healthz)
	hs["GET /api/v1/status"] = http.HandlerFunc(r.serveStatus)
	hs["GET /api/v1/namespaces"] = http.HandlerFunc(r.serveNamespaces)
	hs["GET "+agentevent.Path] = agentevent.Handler(r.AgentEvents(), r.log)
	hs["GET /api/v1/flows"] = &flowquery.Server{Ring: r.Ring(), History: r.History(), Partial: true, Followers: r.follows, Log: r.log}
	maps.Copy(hs, r.opts.Handlers)
	return hs
}

// Routes are the ServeMux patterns the relay serves, sorted.
func (r *Relay) Routes() []string { return slices.Sorted(maps.Keys(r.handlers())) }

func (r *Relay) serveStatus(w http.ResponseWriter, _ *http.Request) {
	httpserve.WriteJSON(w, http.StatusOK, r.Status())
}
