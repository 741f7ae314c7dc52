package collector

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/periscope-dev/periscope/api/flowquery"
)

// Handler serves the collector's HTTP API: GET /api/v1/flows (from the
// ring, or with source=clickhouse from Options.History, as
// flowquery.Server answers it), GET /api/v1/status, GET /api/v1/endpoints
// and DELETE /api/v1/endpoints/{namespace}/{name} (RemoveEndpoint),
// GET /healthz, and Options.Handlers. The API's own patterns are more
// specific than a catch-all "GET /" in Options.Handlers (the web UI), so
// they win over it.
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /api/v1/status", c.serveStatus)
	mux.HandleFunc("GET "+EndpointsPath, c.serveEndpoints)
	mux.HandleFunc("DELETE "+EndpointsPath+"/{namespace}/{name}", c.serveRemoveEndpoint)
	mux.Handle("GET /api/v1/flows", &flowquery.Server{Ring: c.store, History: c.opts.History, Log: c.log})
	for pattern, h := range c.opts.Handlers {
		mux.Handle(pattern, h)
	}
	return mux
}

func (c *Collector) serveStatus(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(c.Status())
	if err != nil {
		http.Error(w, "encode status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}
