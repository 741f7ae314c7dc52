package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/httpserve"
)

// Defaults of Options.
const (
	DefaultListen        = "127.0.0.1:4344"
	DefaultSocket        = "/run/periscope/relay.sock"
	DefaultMergeWindow   = time.Second
	DefaultMaxBuffered   = 1 << 16
	DefaultProbeInterval = 5 * time.Second
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 10 * time.Second
	DefaultConnectWait   = 2 * time.Second
	DefaultPeersFilePoll = 2 * time.Second
	DefaultMaxFollowers  = 64
	shutdownTimeout      = 5 * time.Second
)

// Options configure a Relay. Zero fields take the defaults above.
type Options struct {
	// Peers are collector addresses: host:port or http(s):// URLs.
	Peers []string
	// PeersFile, when set, lists more peers (see ParsePeers); it is
	// re-read when its modification time or size changes.
	PeersFile string
	// PeersFilePoll is how often PeersFile is checked.
	PeersFilePoll time.Duration
	// Listen is the HTTP API's address; ignored when Listener is set.
	Listen string
	// Listener, when set, serves the HTTP API.
	Listener net.Listener
	// MergeWindow is how long a live flow may be held to emit flows from
	// all peers in time order; negative disables ordering.
	MergeWindow time.Duration
	// MaxBuffered bounds the flows one live answer holds in its window.
	MaxBuffered int
	// TLS, when set, is used towards peers (see ClientTLSConfig); peers
	// given as host:port are then reached over https.
	TLS *tls.Config
	// ProbeInterval is how often each peer's /api/v1/status is read.
	ProbeInterval time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff between
	// reconnection attempts of a live stream.
	BackoffMin, BackoffMax time.Duration
	// ConnectWait bounds how long a live answer waits for every peer to
	// connect before it starts (and names the unreachable ones).
	ConnectWait time.Duration
	// Logger is the parent logger; nil discards logs.
	Logger *slog.Logger
	// Version is reported by /api/v1/status.
	Version string
	// Handlers are extra HTTP handlers served next to the API, keyed by
	// ServeMux pattern (e.g. "GET /" for the web UI).
	Handlers map[string]http.Handler
	// MaxFollowers bounds the live followers served at once over every
	// API that follows (Followers); each also follows every peer.
	// DefaultMaxFollowers when zero, unbounded when negative.
	MaxFollowers int
	// Access guards the HTTP API on Listen (access.Guard.TCP); nil checks
	// nothing (tests); the binary always sets one.
	Access *access.Guard
	// Socket, when set, is the path of the API's local Unix socket.
	Socket string
	// PeerToken, when set, is sent to every peer as its API token
	// (Authorization: Bearer).
	PeerToken string
}

// Relay joins collectors. Build it with New, run it with Run.
type Relay struct {
	opts    Options
	log     *slog.Logger
	client  *http.Client
	started time.Time
	follows *flowquery.Limit

	mu       sync.Mutex
	peers    map[string]*peer // by address
	order    []string         // addresses in the order first given
	changed  chan struct{}    // closed and replaced when the peer set changes
	runCtx   context.Context
	probes   sync.WaitGroup
	addr     net.Addr
	ready    chan struct{}
	sent     atomic.Uint64
	late     atomic.Uint64
	answers  atomic.Int64
	partials atomic.Uint64
}

// New builds a relay. It starts nothing; a peers file must be readable.
func New(opts Options) (*Relay, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.MergeWindow == 0 {
		opts.MergeWindow = DefaultMergeWindow
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultMaxBuffered
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffMin)
	}
	if opts.ConnectWait <= 0 {
		opts.ConnectWait = DefaultConnectWait
	}
	if opts.PeersFilePoll <= 0 {
		opts.PeersFilePoll = DefaultPeersFilePoll
	}
	if opts.MaxFollowers == 0 {
		opts.MaxFollowers = DefaultMaxFollowers
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		opts:    opts,
		log:     log.With("component", "relay"),
		started: time.Now(),
		peers:   map[string]*peer{},
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
		follows: flowquery.NewLimit("live followers", opts.MaxFollowers),
	}
	var transport http.RoundTripper = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       opts.TLS,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
	}
	if opts.PeerToken != "" {
		transport = &withToken{next: transport, auth: "Bearer " + opts.PeerToken}
	}
	r.client = &http.Client{Transport: transport}
	peers := opts.Peers
	if opts.PeersFile != "" {
		more, err := readPeersFile(opts.PeersFile)
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		peers = append(slices.Clone(peers), more...)
	}
	for _, p := range peers {
		if _, err := peerURL(p, opts.TLS != nil); err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
	}
	r.SetPeers(peers)
	return r, nil
}

// Followers bounds the live followers the relay serves at once
// (Options.MaxFollowers): its HTTP API takes a place per follow, and so
// must every other API that follows it (the web UI, Hubble's API).
func (r *Relay) Followers() *flowquery.Limit { return r.follows }

// Ready is closed once Run listens.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

// Addr is the HTTP API's address; valid once Ready is closed.
func (r *Relay) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// SetPeers replaces the peer set. Peers kept keep their state and live
// streams; new peers join live answers in progress; removed peers leave
// them. Invalid addresses are logged and skipped.
func (r *Relay) SetPeers(addrs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string]bool{}
	var order []string
	for _, a := range addrs {
		if want[a] {
			continue
		}
		base, err := peerURL(a, r.opts.TLS != nil)
		if err != nil {
			r.log.Warn("skipping peer", "peer", a, "err", err)
			continue
		}
		want[a] = true
		order = append(order, a)
		if r.peers[a] == nil {
			p := newPeer(a, base)
			r.peers[a] = p
			if r.runCtx != nil {
				r.startProbe(p)
			}
		}
	}
	for a, p := range r.peers {
		if !want[a] {
			p.stop()
			delete(r.peers, a)
		}
	}
	if !slices.Equal(order, r.order) {
		r.order = order
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// snapshot returns the current peers and a channel closed when they change.
func (r *Relay) snapshot() ([]*peer, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]*peer, 0, len(r.order))
	for _, a := range r.order {
		ps = append(ps, r.peers[a])
	}
	return ps, r.changed
}

// startProbe runs p's status probe until p is removed or the relay stops.
// r.mu is held.
func (r *Relay) startProbe(p *peer) {
	ctx, cancel := context.WithCancel(r.runCtx)
	p.cancel = cancel
	r.probes.Go(func() { r.probeLoop(ctx, p) })
}

// Run serves the HTTP API, probes the peers and watches the peers file
// until ctx is done.
func (r *Relay) Run(ctx context.Context) (err error) {
	ln := r.opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", r.opts.Listen); err != nil {
			return fmt.Errorf("relay: listen on %s: %w", r.opts.Listen, err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	r.runCtx = runCtx
	r.addr = ln.Addr()
	for _, p := range r.peers {
		r.startProbe(p)
	}
	r.mu.Unlock()
	defer r.probes.Wait()

	var wg sync.WaitGroup
	defer wg.Wait()
	if r.opts.PeersFile != "" {
		wg.Go(func() { r.watchPeersFile(runCtx, r.opts.PeersFile, r.opts.Peers, r.opts.PeersFilePoll) })
	}
	servers, err := httpserve.Listen(runCtx, ln, r.opts.Socket, r.Handler(), r.opts.Access, r.log)
	if err != nil {
		return fmt.Errorf("relay: %w (--api-socket)", err)
	}
	close(r.ready)
	r.log.Info("relay running", "listen", ln.Addr().String(), "socket", r.opts.Socket, "peers", len(r.order), "merge_window", r.opts.MergeWindow)
	servers.Serve(cancel)
	<-runCtx.Done()
	cancel()
	if err := servers.Shutdown(shutdownTimeout); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	return nil
}

// withToken sends the peers' API token with every request to them.
type withToken struct {
	next http.RoundTripper
	auth string
}

func (t *withToken) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", t.auth)
	return t.next.RoundTrip(req)
}
