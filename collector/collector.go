package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/httpserve"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// DefaultListen is the HTTP API's default address.
const DefaultListen = "127.0.0.1:4244"

// DefaultSocket is where the API's local Unix socket is by default
// (--api-socket), and where the CLI looks for it.
const DefaultSocket = "/run/periscope/collector.sock"

// DefaultRingSize is how many flows the collector keeps by default.
const DefaultRingSize = ring.DefaultSize

// DefaultMaxFollowers is how many live followers a collector serves at
// once by default: a follower over HTTP or Hubble's API costs tens of
// kilobytes, a WebSocket client up to ui.DefaultClientBuffer (512 KiB) more,
// so even that many of the costliest stay a fraction of the default
// memory limit (256 MiB).
const DefaultMaxFollowers = 64

// shutdownTimeout bounds how long Run waits for HTTP requests to finish.
const shutdownTimeout = 5 * time.Second

// Attacher attaches the datapath to host interfaces; *datapath.Datapath
// satisfies it.
type Attacher interface {
	AttachInterface(ifname string) error
	DetachInterface(ifname string) error
}

// EnforcementKeeper is implemented by an Attacher that keeps enforcing
// policy after the collector stops (*datapath.Datapath: while a policy is
// in force its programs stay attached and pinned for the next run). Run
// does not detach the interfaces on return while KeepsEnforcing is true, so
// a clean stop or restart opens no window without enforcement.
type EnforcementKeeper interface {
	KeepsEnforcing() bool
}

// Sink receives every enriched flow after it is stored. Consume runs in the
// pipeline, one flow at a time: it must not block, and f is valid only
// during the call.
type Sink interface {
	Consume(f *api.Flow)
}

// Names gives a flow the DNS names of its addresses (source_names,
// destination_names) without allocating; *fqdn.Cache implements it.
type Names interface {
	Annotate(f *api.Flow)
}

// DatapathStats are the datapath's counters shown in /api/v1/status.
type DatapathStats struct {
	EventsRead    uint64
	EventsLost    uint64
	EventsEmitted uint64
	EventsPending uint64
	FlowsEnded    uint64
	// FlowTableEntries of FlowTableSize is the kernel flow table's fill.
	FlowTableEntries, FlowTableSize uint64
	// RecordsMerged and SocketsMerged count the records that merged a
	// connection's two observation points and the socket closes folded
	// into their connection's records.
	RecordsMerged, SocketsMerged uint64
	// Maps are the kernel maps and their memory.
	Maps []MapStatus
}

// MapStatus is one kernel map of the datapath in /api/v1/status.
type MapStatus struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	MaxEntries uint32 `json:"max_entries"`
	Bytes      uint64 `json:"bytes"` // the memory the kernel accounts to it
}

// Options configure a Collector. Either Config (resolved against the kernel
// by New) or Topology (already resolved, e.g. by tests) declares endpoints.
type Options struct {
	// Config declares the node's endpoints; resolved with Resolve.
	Config *Config
	// Topology, when set, is used instead of resolving Config.
	Topology *Topology
	// Sources produce flows, each in its own goroutine; at least one is
	// required. The kernel datapath is the first.
	Sources []Source
	// Attacher, when set, is asked to attach to every endpoint's host veth
	// and every host interface when Run starts, and to detach when it ends
	// (unless it is an EnforcementKeeper that keeps enforcing).
	Attacher Attacher
	// Stats, when set, reports the datapath's counters.
	Stats func() DatapathStats
	// Stages, when set, reads the accounts of the flow path's stages (the
	// datapath's and the sinks'), shown in /api/v1/status.
	Stages func() []account.Stage
	// Interfaces, when set, lists the interfaces the datapath is attached
	// to; otherwise status shows those the collector attached.
	Interfaces func() []string
	// Listen is the HTTP API's address (DefaultListen when empty); ignored
	// when Listener is set.
	Listen string
	// Listener, when set, serves the HTTP API (the caller may pick a port).
	Listener net.Listener
	// Access guards the HTTP API on Listen (access.Guard.TCP): the token,
	// Host and Origin checks, what may change state. nil checks nothing:
	// for tests, and servers behind a guard of their own; the binary
	// always sets one.
	Access *access.Guard
	// Socket, when set, is the path of the API's local Unix socket
	// (access.ListenSocket): the same API, every call allowed to whoever
	// its file permissions let in.
	Socket string
	// RingSize is how many flows are kept (DefaultRingSize when zero).
	RingSize int
	// MaxFollowers bounds the live followers served at once, over every
	// API that follows (Followers); DefaultMaxFollowers when zero,
	// unbounded when negative.
	MaxFollowers int
	// Sinks get every flow after it is stored.
	Sinks []Sink
	// Names, when set, names every flow's addresses after enrichment.
	Names Names
	// History, when set, is long-term storage (ClickHouse) GET /api/v1/flows
	// reads with source=clickhouse.
	History flowquery.Reader
	// Handlers are extra HTTP handlers served next to the API, keyed by
	// ServeMux pattern (e.g. "GET /metrics").
	Handlers map[string]http.Handler
	// Logger is the parent logger; nil discards logs.
	Logger *slog.Logger
	// Version is reported by /api/v1/status.
	Version string
	// Identities allocates the endpoints' security identities; nil keeps
	// them in memory only.
	Identities *identity.Allocator
	// IdentityGrace is how long an identity no endpoint of this node uses
	// is kept (identity.Allocator.Release, at start and at the end of
	// Run); 0 means identity.DefaultReleaseGrace, negative never.
	IdentityGrace time.Duration
	// Attribution, when set, holds the records of workloads not yet
	// discovered (an unknown address on a workload network) until their
	// endpoint is in force or a window ends (attribution.go); nil passes
	// every record on at once. The collector's status and Stages then
	// carry its account (account.StageAttribution).
	Attribution *Attribution
	// EndpointState, when set, is the file of the endpoints in force: New
	// keeps those of the previous run that the endpoints no longer
	// declare (see endpoints.go), and every change rewrites it.
	EndpointState string
}

// Collector is the node daemon: Sources → enrich → store → sinks, and the
// HTTP API over the store.
type Collector struct {
	opts     Options
	log      *slog.Logger
	registry atomic.Pointer[Registry] // replaced whole by each change of the endpoints
	store    *ring.Ring
	events   *agentevent.Log
	follows  *flowquery.Limit
	started  time.Time

	endpointsMu sync.Mutex // serialises changes of the endpoints
	topo        *Topology  // the endpoints in force, as registry was built from
	onChange    []func() error
	discovered  discoveredQueue // watchers' events not yet in force

	pipeMu sync.Mutex       // the pipeline's, when several paths feed it
	hold   *attributionHold // nil without Options.Attribution

	ready    chan struct{}
	mu       sync.Mutex
	addr     net.Addr
	attached []string
	running  bool // between attach and detach: PutEndpoint attaches too
}

// New builds a collector: it resolves the endpoints (unless opts.Topology is
// given) and prepares the registry and the store. It starts nothing.
func New(opts Options) (*Collector, error) {
	if len(opts.Sources) == 0 {
		return nil, errors.New("collector: no flow source")
	}
	for i, src := range opts.Sources {
		if src == nil {
			return nil, fmt.Errorf("collector: flow source %d is nil", i)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "collector")
	topo := opts.Topology
	if topo == nil {
		cfg := opts.Config
		if cfg == nil {
			cfg = &Config{}
		}
		var err error
		if topo, err = Resolve(cfg); err != nil {
			return nil, fmt.Errorf("collector: %w", err)
		}
	}
	ids := opts.Identities
	if ids == nil {
		ids, _ = identity.NewAllocator("")
	}
	if opts.EndpointState != "" {
		state, err := loadEndpointState(opts.EndpointState)
		if err != nil {
			return nil, fmt.Errorf("collector: %w", err)
		}
		topo = withKeptEndpoints(state, topo, resolveEndpoint, log)
	}
	reg, err := NewRegistryWith(topo, ids)
	if err != nil {
		return nil, fmt.Errorf("collector: endpoint registry: %w", err)
	}
	if opts.EndpointState != "" {
		if err := saveEndpointState(opts.EndpointState, topo.Endpoints); err != nil {
			return nil, fmt.Errorf("collector: %w", err)
		}
	}
	if opts.IdentityGrace == 0 {
		opts.IdentityGrace = identity.DefaultReleaseGrace
	}
	opts.Identities = ids
	releaseIdentities(ids, reg, opts.IdentityGrace, log)
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.MaxFollowers == 0 {
		opts.MaxFollowers = DefaultMaxFollowers
	}
	c := &Collector{
		opts:    opts,
		log:     log,
		store:   ring.New(opts.RingSize),
		events:  agentevent.NewLog(reg.NodeName(), 0),
		follows: flowquery.NewLimit("live followers", opts.MaxFollowers),
		started: time.Now(),
		ready:   make(chan struct{}),
		topo:    topo,
	}
	c.registry.Store(reg)
	if opts.Attribution != nil {
		if opts.Attribution.Networks == nil {
			return nil, errors.New("collector: attribution hold without workload networks")
		}
		c.hold = newAttributionHold(*opts.Attribution, &c.pipeMu)
	}
	return c, nil
}

// Stages are the accounts of the collector's own stages of the flow path:
// the attribution hold's (none without Options.Attribution).
func (c *Collector) Stages() []account.Stage {
	if c.hold == nil {
		return nil
	}
	return []account.Stage{c.hold.Stage()}
}

// Registry is the collector's endpoint registry as it is now: a change of
// the endpoints (RemoveEndpoint) replaces it.
func (c *Collector) Registry() *Registry { return c.registry.Load() }

// Store is the collector's flow store, its ring: a flowquery.Reader.
func (c *Collector) Store() *ring.Ring { return c.store }

// Followers bounds the live followers the collector serves at once
// (Options.MaxFollowers): its HTTP API takes a place per follow, and so
// must every other API that follows its ring (the web UI per WebSocket,
// Hubble's API per follow).
func (c *Collector) Followers() *flowquery.Limit { return c.follows }

// Ready is closed once Run listens and has attached the datapath.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// Addr is the HTTP API's address; valid once Ready is closed.
func (c *Collector) Addr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// process is the pipeline, run for every flow of every source, one flow at a
// time (runSources serializes the sources, and the attribution hold's
// releases with them). A record of a workload not yet discovered may be
// held (attribution.go); the others go on at once.
func (c *Collector) process(f *api.Flow) {
	reg := c.Registry()
	reg.Enrich(f)
	if c.hold != nil && c.hold.take(f, time.Now()) {
		return
	}
	c.deliver(f)
}

// deliver names f's addresses, stores it and hands it to the sinks.
func (c *Collector) deliver(f *api.Flow) {
	if c.opts.Names != nil {
		c.opts.Names.Annotate(f)
	}
	c.store.Write(f)
	for _, s := range c.opts.Sinks {
		s.Consume(f)
	}
}

// Run attaches the datapath, serves the HTTP API and runs the pipeline until
// ctx is done, a source fails, every source has ended, or the server fails. On return the follows have
// ended, the server is shut down and the interfaces it attached detached,
// except while the Attacher keeps enforcing (see EnforcementKeeper).
func (c *Collector) Run(ctx context.Context) (err error) {
	ln := c.opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.opts.Listen); err != nil {
			return fmt.Errorf("collector: listen on %s: %w", c.opts.Listen, err)
		}
	}
	defer c.store.Close()
	if err := c.attach(); err != nil {
		ln.Close()
		c.detach()
		return err
	}
	defer c.detach()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	servers, err := httpserve.Listen(runCtx, ln, c.opts.Socket, c.Handler(), c.opts.Access, c.log)
	if err != nil {
		return fmt.Errorf("collector: %w (--api-socket)", err)
	}
	c.mu.Lock()
	c.addr = ln.Addr()
	c.mu.Unlock()
	c.announce()
	close(c.ready)
	c.log.Info("collector running", "listen", ln.Addr().String(), "socket", c.opts.Socket, "node", c.Registry().NodeName(),
		"endpoints", len(c.Registry().endpoints), "ring_size", c.store.Capacity())

	servers.Serve(cancel)
	var wg sync.WaitGroup
	if c.opts.IdentityGrace >= 0 {
		wg.Go(func() { c.releaseUnusedIdentities(runCtx) })
	}

	// The hold outlives the sources: what it holds when they stop goes on
	// before the store closes.
	holdCtx, stopHold := context.WithCancel(context.Background())
	var holdDone sync.WaitGroup
	if c.hold != nil {
		holdDone.Go(func() { c.hold.run(holdCtx, c.Registry, c.deliver) })
	}
	srcErr := c.runSources(runCtx, c.process)
	stopHold()
	holdDone.Wait()
	cancel()
	c.store.Close()
	// The endpoints were in use until now: their grace starts here.
	releaseIdentities(c.opts.Identities, c.Registry(), c.opts.IdentityGrace, c.log)
	serveErr := servers.Shutdown(shutdownTimeout)
	wg.Wait()
	if serveErr != nil {
		return fmt.Errorf("collector: %w", serveErr)
	}
	if srcErr != nil {
		return fmt.Errorf("collector: %w", srcErr)
	}
	return nil
}

func (c *Collector) attach() error {
	if c.opts.Attacher == nil {
		return nil
	}
	c.endpointsMu.Lock()
	defer c.endpointsMu.Unlock()
	for _, ifname := range c.Registry().Interfaces() {
		if err := c.opts.Attacher.AttachInterface(ifname); err != nil {
			return fmt.Errorf("collector: attach to %s: %w", ifname, err)
		}
		c.mu.Lock()
		c.attached = append(c.attached, ifname)
		c.mu.Unlock()
		c.log.Debug("attached", "interface", ifname)
	}
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	return nil
}

func (c *Collector) detach() {
	if c.opts.Attacher == nil {
		return
	}
	c.endpointsMu.Lock() // no PutEndpoint attaches meanwhile
	defer c.endpointsMu.Unlock()
	c.mu.Lock()
	attached := c.attached
	c.attached = nil
	c.running = false
	c.mu.Unlock()
	if k, ok := c.opts.Attacher.(EnforcementKeeper); ok && len(attached) > 0 && k.KeepsEnforcing() {
		c.log.Info("policy in force: interfaces left attached", "interfaces", len(attached))
		return
	}
	for i := len(attached) - 1; i >= 0; i-- {
		if err := c.opts.Attacher.DetachInterface(attached[i]); err != nil {
			c.log.Warn("detach", "interface", attached[i], "err", err)
		}
	}
}
