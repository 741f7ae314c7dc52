package main

import (
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/ui"
)

// uiPattern is where the web UI is mounted on the collector's listener: a
// catch-all, so it serves the app at / and its WebSocket at /api/v1/ws,
// while the collector's own, more specific patterns (/api/v1/flows,
// /api/v1/status, /healthz, /metrics) win over it.
const uiPattern = "GET /"

// uiMount is the web UI's handler, registered before the collector exists
// (Options.Handlers) and started once it does (the UI follows its store).
type uiMount struct {
	ui atomic.Pointer[ui.UI]
}

func (m *uiMount) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u := m.ui.Load()
	if u == nil {
		http.Error(w, "web UI not started", http.StatusServiceUnavailable)
		return
	}
	u.ServeHTTP(w, r)
}

// start builds the UI over the collector's ring and history (nil: none).
// The collector's access guard checks its token and origins; origins are
// the web origins allowed besides the server's own.
func (m *uiMount) start(c *collector.Collector, history flowquery.Reader, origins []string, logger *slog.Logger) error {
	u, err := ui.New(ui.Options{
		Source:         c.Store(),
		History:        history,
		AllowedOrigins: origins,
		Followers:      c.Followers(),
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	m.ui.Store(u)
	return nil
}

// Close stops the UI's hub and its WebSockets.
func (m *uiMount) Close() {
	if u := m.ui.Load(); u != nil {
		u.Close()
	}
}
