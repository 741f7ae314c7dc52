package collector

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/ndjson"
)

// Handler serves the collector's HTTP API: GET /api/v1/flows (from the
// ring, or with source=clickhouse from Options.History), GET /api/v1/status,
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
	mux.HandleFunc("GET /api/v1/flows", c.serveFlows)
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

func (c *Collector) serveFlows(w http.ResponseWriter, r *http.Request) {
	req, err := parseFlowsRequest(r.URL.Query(), time.Now(), c.opts.ParseFilter)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.source == flowquery.SourceClickHouse {
		c.serveHistory(w, r, req)
		return
	}
	out := ndjson.NewWriter(w)
	writeFlow := func(e *Entry) error { return out.Flow(&e.Flow) }
	if !req.follow {
		if err := c.store.Each(req.query, writeFlow); err != nil {
			c.log.Debug("flows response ended", "err", err)
			return
		}
		out.Close()
		return
	}

	w.WriteHeader(http.StatusOK)
	skipped, err := c.store.Follow(r.Context(), req.query, FollowOptions{
		Buffer: c.opts.FollowBuffer,
		Idle:   out.Flush,
	}, writeFlow)
	if err != nil {
		c.log.Debug("follow ended", "err", err, "remote", r.RemoteAddr)
	}
	if skipped > 0 {
		c.log.Warn("slow follower skipped flows", "skipped", skipped, "remote", r.RemoteAddr)
	}
}

// errNoHistory is the 400 of source=clickhouse without Options.History.
const errNoHistory = "history is not configured (start the collector with --clickhouse)"

// serveHistory answers GET /api/v1/flows?source=clickhouse from
// Options.History, as NDJSON; a failing back end is a 502.
func (c *Collector) serveHistory(w http.ResponseWriter, r *http.Request, req *flowsRequest) {
	if c.opts.History == nil {
		http.Error(w, errNoHistory, http.StatusBadRequest)
		return
	}
	flows, err := c.opts.History.Query(r.Context(), HistoryQuery{
		Chips: req.chips,
		Since: req.query.Since, Until: req.query.Until,
		First: req.query.First, Last: req.query.Last,
	})
	if err != nil {
		c.log.Warn("history query failed", "err", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out := ndjson.NewWriter(w)
	for i := range flows {
		if err := out.Flow(&flows[i]); err != nil {
			c.log.Debug("history response ended", "err", err)
			return
		}
	}
	out.Close()
}
