package collector

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// writeStall is how long a client may stall a response before it is dropped.
const writeStall = 30 * time.Second

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
	rc := http.NewResponseController(w)
	dk := &deadlineKeeper{rc: rc}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 32<<10)
	line := make([]byte, 0, 2048)
	writeFlow := func(e *Entry) error {
		dk.extend()
		line = append(api.AppendJSON(line[:0], &e.Flow), '\n')
		_, err := bw.Write(line)
		return err
	}

	if req.source == flowquery.SourceClickHouse {
		c.serveHistory(w, r, req)
		return
	}
	if !req.follow {
		if err := c.store.Each(req.query, writeFlow); err != nil {
			c.log.Debug("flows response ended", "err", err)
			return
		}
		bw.Flush()
		return
	}

	flush := func() error {
		dk.extend()
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	w.WriteHeader(http.StatusOK)
	skipped, err := c.store.Follow(r.Context(), req.query, FollowOptions{
		Buffer: c.opts.FollowBuffer,
		Idle:   flush,
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
	dk := &deadlineKeeper{rc: http.NewResponseController(w)}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 32<<10)
	line := make([]byte, 0, 2048)
	for i := range flows {
		dk.extend()
		line = append(api.AppendJSON(line[:0], &flows[i]), '\n')
		if _, err := bw.Write(line); err != nil {
			c.log.Debug("history response ended", "err", err)
			return
		}
	}
	bw.Flush()
}

// deadlineKeeper pushes the connection's write deadline writeStall ahead,
// at most once a second; ResponseWriters without deadlines (tests) ignore it.
type deadlineKeeper struct {
	rc  *http.ResponseController
	set time.Time
}

func (d *deadlineKeeper) extend() {
	now := time.Now()
	if now.Sub(d.set) < time.Second {
		return
	}
	d.set = now
	_ = d.rc.SetWriteDeadline(now.Add(writeStall)) // ErrNotSupported: no deadline
}
