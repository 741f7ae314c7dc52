package ui

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/api/flowquery"
)

//go:embed web
var webFS embed.FS

// Defaults of Options.
const (
	DefaultBatchInterval = 75 * time.Millisecond
	DefaultQueueLength   = 16
	DefaultMaxBatch      = 4096
	DefaultClientBuffer  = 512 << 10
)

// Options configure the UI.
type Options struct {
	// Source streams live flows and replays stored ones (a collector's
	// ring, or a relay's Ring); required.
	Source flowquery.Reader
	// History, when set, answers time ranges beyond the live ring; the
	// app then asks GET /api/v1/flows with source=clickhouse.
	History flowquery.Reader
	// Token, when set, is required on the WebSocket and on GET
	// /api/v1/flows as "Authorization: Bearer <token>" or, since browsers
	// cannot set headers on a WebSocket, as ?token=<token>. It is for a UI
	// served on its own: a collector or relay leaves it empty, as its
	// access.Guard checks the API token on every request (the app sends it
	// the same two ways).
	Token string
	// AllowedOrigins are the origins (scheme://host[:port], or "*") whose
	// pages may open the WebSocket; empty means the server's own host only.
	AllowedOrigins []string
	// BatchInterval is how often batches are sent (DefaultBatchInterval).
	BatchInterval time.Duration
	// QueueLength is each client's send queue in batches
	// (DefaultQueueLength); a client with a full queue is slow.
	QueueLength int
	// MaxBatch bounds the flows in one batch (DefaultMaxBatch); more within
	// one interval are skipped and counted.
	MaxBatch int
	// ClientBuffer bounds, in bytes, what the hub holds for one client:
	// its pending batch, the batches queued to it and the live flows held
	// during its replay (DefaultClientBuffer). Beyond it flows are skipped
	// and counted, so a client that stops reading costs at most this
	// (plus one replay message) until its write deadline drops it.
	ClientBuffer int
	// Followers, when set, bounds the WebSockets served at once, shared
	// with the server's other APIs that follow (collector.Followers): one
	// more is refused with a 503 before the upgrade.
	Followers *flowquery.Limit
	// Logger is the parent logger; nil discards logs.
	Logger *slog.Logger
}

// UI is the web UI's http.Handler: the app at /, the WebSocket at
// /api/v1/ws, and (when nothing in front of it answers them first, as a
// collector or relay does) GET /api/v1/flows for history ranges, answered
// by flowquery.Server from Source and History.
type UI struct {
	opts     Options
	log      *slog.Logger
	hub      *hub
	mux      *http.ServeMux
	upgrader websocket.Upgrader
	cancel   context.CancelFunc
	ctx      context.Context
	wg       sync.WaitGroup
	origins  map[string]bool
	anyOrig  bool
}

// New builds the UI and starts its hub; Close stops it.
func New(opts Options) (*UI, error) {
	if opts.Source == nil {
		return nil, errors.New("ui: no flow source")
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = DefaultBatchInterval
	}
	if opts.QueueLength <= 0 {
		opts.QueueLength = DefaultQueueLength
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.ClientBuffer <= 0 {
		opts.ClientBuffer = DefaultClientBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "ui")
	u := &UI{
		opts:    opts,
		log:     log,
		hub:     newHub(opts.Source, log, opts.BatchInterval, opts.MaxBatch, opts.ClientBuffer, opts.History != nil),
		mux:     http.NewServeMux(),
		origins: make(map[string]bool),
	}
	for _, o := range opts.AllowedOrigins {
		if o == "*" {
			u.anyOrig = true
		}
		u.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	u.upgrader = websocket.Upgrader{
		ReadBufferSize:  4 << 10,
		WriteBufferSize: 32 << 10,
		// Checked (with a 403) before the upgrade, in serveWS.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	static, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	u.mux.HandleFunc("GET /api/v1/ws", u.serveWS)
	flows := &flowquery.Server{Ring: opts.Source, History: opts.History, Log: log}
	u.mux.HandleFunc("GET /api/v1/flows", func(w http.ResponseWriter, r *http.Request) {
		if !u.tokenOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="periscope"`)
			http.Error(w, "missing or wrong token", http.StatusUnauthorized)
			return
		}
		if q := r.URL.Query(); q.Has("token") { // ours, not a flows parameter
			q.Del("token")
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
		}
		flows.ServeHTTP(w, r)
	})
	u.mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy",
			"default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'")
		files.ServeHTTP(w, r)
	}))
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.wg.Go(func() { u.hub.run(u.ctx) })
	return u, nil
}

// ServeHTTP serves the app, the WebSocket and history requests.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.mux.ServeHTTP(w, r) }

// Close stops the hub and ends every WebSocket.
func (u *UI) Close() {
	u.cancel()
	u.wg.Wait()
}

// Stats are the hub's counters.
func (u *UI) Stats(ctx context.Context) (HubStats, error) {
	select {
	case <-u.hub.done:
		return HubStats{}, errors.New("ui: closed")
	default:
	}
	return u.hub.stats(ctx)
}

// originOK accepts no Origin (not a browser), the server's own host, and
// Options.AllowedOrigins.
func (u *UI) originOK(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || u.anyOrig {
		return true
	}
	if u.origins[strings.ToLower(origin)] {
		return true
	}
	if len(u.origins) > 0 {
		return false
	}
	o, err := url.Parse(origin)
	return err == nil && strings.EqualFold(o.Host, r.Host)
}

// tokenOK checks the bearer token in the header or ?token=.
func (u *UI) tokenOK(r *http.Request) bool {
	if u.opts.Token == "" {
		return true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		return access.CheckAuthorization(h, u.opts.Token)
	}
	return subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(u.opts.Token)) == 1
}

func (u *UI) serveWS(w http.ResponseWriter, r *http.Request) {
	if !u.originOK(r) {
		u.log.Warn("websocket refused: foreign origin", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !u.tokenOK(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="periscope"`)
		http.Error(w, "missing or wrong token", http.StatusUnauthorized)
		return
	}
	release, err := u.opts.Followers.Acquire()
	if err != nil {
		u.log.Warn("websocket refused", "err", err, "remote", r.RemoteAddr)
		flowquery.WriteBusy(w, err)
		return
	}
	conn, err := u.upgrader.Upgrade(w, r, nil)
	if err != nil {
		release()
		return // the upgrader answered
	}
	ctx, cancel := context.WithCancel(u.ctx)
	c := &client{
		h:       u.hub,
		conn:    conn,
		send:    make(chan []byte, u.opts.QueueLength),
		direct:  make(chan []byte),
		ctx:     ctx,
		cancel:  cancel,
		release: release,
	}
	select {
	case u.hub.register <- c:
	case <-u.hub.done:
		cancel()
		conn.Close()
		release()
		return
	}
	go c.writePump()
	go c.readPump()
}
