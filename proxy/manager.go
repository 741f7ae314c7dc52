package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/proxy/accesslog"
	"github.com/periscope-dev/periscope/proxy/envoy"
	"github.com/periscope-dev/periscope/proxy/xds"
)

// Defaults of Options.
const (
	DefaultSocket         = "/run/periscope/envoy.sock"
	DefaultEnvoyBinary    = envoy.DefaultBinary
	DefaultProxyPortBase  = 15100
	DefaultProxyPortCount = 900
	DefaultReadyTimeout   = 20 * time.Second
)

// Redirect is one (endpoint, direction, port) whose TCP connections go
// through Envoy.
type Redirect struct {
	// Endpoint is the endpoint's id (its host-side ifindex).
	Endpoint uint32
	// Addrs are the endpoint's addresses (required for ingress).
	Addrs     []netip.Addr
	Direction datapath.RedirectDirection
	Port      uint16
	// Rules are the port's L7 rules: empty for visibility only.
	Rules xds.Rules
}

func (r Redirect) key() redirectKey { return redirectKey{r.Endpoint, r.Direction, r.Port} }

type redirectKey struct {
	endpoint  uint32
	direction datapath.RedirectDirection
	port      uint16
}

// Datapath is what the manager needs of the datapath; *datapath.Datapath
// satisfies it.
type Datapath interface {
	SetRedirects([]datapath.Redirect) error
}

// Options configure a Manager.
type Options struct {
	// Datapath steers the redirected connections; required.
	Datapath Datapath
	// NodeID is Envoy's xDS node id; required.
	NodeID string
	// Socket is the Unix socket of the gRPC server (ADS and access logs).
	Socket string
	// External: do not run Envoy; one the user runs connects to Socket
	// with the bootstrap written beside it (envoy-bootstrap.json).
	External bool
	// Envoy configures the supervised Envoy (its NodeID, XDSSocket and
	// Logger are set from these Options). Binary defaults to
	// DefaultEnvoyBinary.
	Envoy envoy.Options
	// ProxyPortBase and ProxyPortCount are the ports Envoy's listeners
	// take, on 127.0.0.1 and ::1.
	ProxyPortBase, ProxyPortCount uint16
	// AccessLog configures the access-log source.
	AccessLog accesslog.Options
	// ReadyTimeout bounds how long SetRedirects waits for Envoy to have a
	// new listener before the datapath redirects to it anyway (fail closed).
	ReadyTimeout time.Duration
	// IdleTimeout closes Envoy's connections idle this long; below the
	// datapath's ProxyIdleTimeout (default xds.DefaultIdleTimeout).
	IdleTimeout time.Duration
	// AccessLogFlush and AccessLogBuffer bound how long and how many
	// bytes Envoy buffers access-log entries (xds.Options).
	AccessLogFlush  time.Duration
	AccessLogBuffer uint32
	// Logger is the parent logger; nil discards.
	Logger *slog.Logger
}

// Manager runs the node's proxy.
type Manager struct {
	opts Options
	log  *slog.Logger
	xds  *xds.Server
	als  *accesslog.Source
	sup  *envoy.Supervisor

	mu      sync.Mutex // serialises SetRedirects and ApplyL7
	version int
	ports   map[redirectKey]uint16
	current []Redirect
	flagged []Redirect // SetRedirects'
	policy  []Redirect // ApplyL7's
}

// New checks opts and builds the manager; Run starts it.
func New(opts Options) (*Manager, error) {
	if opts.Datapath == nil || opts.NodeID == "" {
		return nil, errors.New("proxy: Datapath and NodeID are required")
	}
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.ProxyPortBase == 0 {
		opts.ProxyPortBase = DefaultProxyPortBase
	}
	if opts.ProxyPortCount == 0 {
		opts.ProxyPortCount = DefaultProxyPortCount
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.AccessLog.Logger = log
	m := &Manager{opts: opts, log: log.With("component", "proxy"), ports: map[redirectKey]uint16{},
		als: accesslog.New(opts.AccessLog)}
	if !opts.External {
		eo := opts.Envoy
		if eo.Binary == "" {
			eo.Binary = DefaultEnvoyBinary
		}
		eo.NodeID, eo.XDSSocket, eo.Logger = opts.NodeID, opts.Socket, log
		var err error
		if m.sup, err = envoy.New(eo); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	return m, nil
}

// Source is the access-log flow source.
func (m *Manager) Source() *accesslog.Source { return m.als }

// Supervisor is the supervised Envoy; nil with External.
func (m *Manager) Supervisor() *envoy.Supervisor { return m.sup }

// XDS is the xDS server; nil before Run.
func (m *Manager) XDS() *xds.Server { return m.xds }

// Run serves the gRPC socket and runs Envoy until ctx ends. ready (may be
// nil) is called once the socket serves and SetRedirects may be called.
func (m *Manager) Run(ctx context.Context, ready func()) error {
	if err := os.MkdirAll(filepath.Dir(m.opts.Socket), 0o700); err != nil {
		return fmt.Errorf("proxy: socket directory: %w", err)
	}
	_ = os.Remove(m.opts.Socket) // a previous run's
	ln, err := net.Listen("unix", m.opts.Socket)
	if err != nil {
		return fmt.Errorf("proxy: listen on %s: %w", m.opts.Socket, err)
	}
	defer os.Remove(m.opts.Socket)
	if err := os.Chmod(m.opts.Socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("proxy: %w", err)
	}
	g := grpc.NewServer(accesslog.ServerCodec())
	m.mu.Lock()
	m.xds = xds.NewServer(ctx, m.opts.NodeID, m.log)
	m.mu.Unlock()
	m.xds.Register(g)
	m.als.Register(g)
	if m.opts.External {
		if err := m.writeBootstrap(); err != nil {
			ln.Close()
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			m.log.Error("proxy gRPC server", "err", err)
		}
	})
	if m.sup != nil {
		wg.Go(func() { _ = m.sup.Run(ctx) })
	}
	m.log.Info("proxy running", "socket", m.opts.Socket, "external_envoy", m.opts.External)
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	// Envoy is stopping (its access-log streams end with it): give the
	// streams a moment, then stop.
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	wg.Wait()
	return nil
}

// writeBootstrap leaves the bootstrap of an external Envoy beside the socket.
func (m *Manager) writeBootstrap() error {
	b, err := envoy.Bootstrap(m.opts.NodeID, m.opts.Socket, netip.MustParseAddrPort("127.0.0.1:9901"))
	if err != nil {
		return err
	}
	p := filepath.Join(filepath.Dir(m.opts.Socket), "envoy-bootstrap.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("proxy: write %s: %w", p, err)
	}
	m.log.Info("external Envoy: run it with this bootstrap", "path", p)
	return nil
}

// SetRedirects makes rs the redirects asked for besides L7 policy's (the
// --proxy-redirect flag's: visibility, unless rs carry rules); where
// policy (ApplyL7) redirects the same port, policy's rules apply.
func (m *Manager) SetRedirects(ctx context.Context, rs []Redirect) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkUnique(rs); err != nil {
		return err
	}
	if err := m.apply(ctx, merge(m.policy, rs)); err != nil {
		return err
	}
	m.flagged = slices.Clone(rs)
	return nil
}

func checkUnique(rs []Redirect) error {
	seen := map[redirectKey]bool{}
	for _, r := range rs {
		if seen[r.key()] {
			return fmt.Errorf("proxy: endpoint %d %s port %d redirected twice", r.Endpoint, r.Direction, r.Port)
		}
		seen[r.key()] = true
	}
	return nil
}

// merge is first's redirects and those of second on other ports.
func merge(first, second []Redirect) []Redirect {
	out := slices.Clone(first)
	for _, r := range second {
		if !slices.ContainsFunc(first, func(p Redirect) bool { return p.key() == r.key() }) {
			out = append(out, r)
		}
	}
	return out
}

// apply makes rs the complete set of redirects: Envoy first gets
// listeners for the old and the new ones, the datapath redirects once the
// new listeners listen (or ReadyTimeout passed: fail closed), then the
// listeners of the removed ones go. An allowed connection never meets a
// missing listener because of an update. The caller holds m.mu.
func (m *Manager) apply(ctx context.Context, rs []Redirect) error {
	if m.xds == nil {
		return errors.New("proxy: set redirects before Run")
	}
	seen := map[redirectKey]bool{}
	for _, r := range rs {
		seen[r.key()] = true
	}
	ports, err := m.allocate(rs)
	if err != nil {
		return err
	}
	union := slices.Clone(rs)
	for _, r := range m.current {
		if !seen[r.key()] {
			union = append(union, r)
		}
	}
	if err := m.publish(ctx, union, ports); err != nil {
		return err
	}
	m.waitListening(ctx, rs, ports)
	var drs []datapath.Redirect
	for _, r := range rs {
		drs = append(drs, datapath.Redirect{Endpoint: r.Endpoint, Addrs: r.Addrs, Direction: r.Direction,
			Proto: unix.IPPROTO_TCP, Port: r.Port, ProxyPort: ports[r.key()], Policy: r.Rules.Restricts()})
	}
	if err := m.opts.Datapath.SetRedirects(drs); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if len(union) != len(rs) {
		if err := m.publish(ctx, rs, ports); err != nil {
			return err
		}
	}
	for k := range m.ports {
		if !seen[k] {
			delete(m.ports, k)
		}
	}
	m.current = slices.Clone(rs)
	m.log.Info("redirects set", "redirects", len(rs))
	return nil
}

// allocate gives every redirect its proxy port: the one it had, else the
// first free port of the range (not ours, nothing listening there).
func (m *Manager) allocate(rs []Redirect) (map[redirectKey]uint16, error) {
	v4, v6, err := listeningPorts()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	taken := map[uint16]bool{}
	for _, p := range m.ports {
		taken[p] = true
	}
	next := m.opts.ProxyPortBase
	last := m.opts.ProxyPortBase + m.opts.ProxyPortCount - 1
	for _, r := range rs {
		if _, ok := m.ports[r.key()]; ok {
			continue
		}
		for ; next <= last && (taken[next] || v4[next] || v6[next]); next++ {
		}
		if next > last {
			return nil, fmt.Errorf("proxy: no free proxy port in %d-%d", m.opts.ProxyPortBase, last)
		}
		if r.Port >= m.opts.ProxyPortBase && r.Port <= last {
			return nil, fmt.Errorf("proxy: port %d of endpoint %d is in the proxy port range %d-%d",
				r.Port, r.Endpoint, m.opts.ProxyPortBase, last)
		}
		m.ports[r.key()] = next
		taken[next] = true
	}
	return m.ports, nil
}

// publish sets the snapshot of rs and waits until Envoy accepts it (up to
// ReadyTimeout; a NACK fails).
func (m *Manager) publish(ctx context.Context, rs []Redirect, ports map[redirectKey]uint16) error {
	m.version++
	version := strconv.Itoa(m.version)
	ls := make([]xds.Listener, 0, len(rs))
	for _, r := range rs {
		ls = append(ls, xds.Listener{Endpoint: r.Endpoint, Direction: r.Direction.String(), Port: r.Port,
			ProxyPort: ports[r.key()], Rules: r.Rules, UpstreamMark: datapath.ProxyMarkUpstream})
	}
	snap, err := xds.Build(version, ls, xds.Options{IdleTimeout: m.opts.IdleTimeout,
		FlushInterval: m.opts.AccessLogFlush, BufferBytes: m.opts.AccessLogBuffer,
		RequestHeaders: accesslog.DefaultRequestHeaders, ResponseHeaders: accesslog.DefaultResponseHeaders})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if err := m.xds.Set(ctx, snap); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, m.opts.ReadyTimeout)
	defer cancel()
	err = m.xds.WaitAcked(wctx, version)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		m.log.Warn("envoy did not accept the configuration in time: redirected ports fail closed until it does",
			"version", version, "timeout", m.opts.ReadyTimeout, "envoy_connected", m.xds.Connected())
		return nil
	default:
		return fmt.Errorf("proxy: %w", err)
	}
}

// waitListening waits (up to ReadyTimeout) until every redirect's proxy
// port has Envoy's listeners on both families.
func (m *Manager) waitListening(ctx context.Context, rs []Redirect, ports map[redirectKey]uint16) {
	deadline := time.Now().Add(m.opts.ReadyTimeout)
	for {
		v4, v6, err := listeningPorts()
		missing := 0
		for _, r := range rs {
			p := ports[r.key()]
			if err != nil || !v4[p] || !v6[p] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			m.log.Warn("envoy listeners missing: their ports fail closed until they listen", "missing", missing)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stats describe the proxy.
type Stats struct {
	NACKs       uint64 // configurations Envoy rejected
	EnvoyStarts uint64 // Envoy processes started (supervised only)
	Redirects   int
	AccessLog   accesslog.Stats
}

// Stats returns the proxy's counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{Redirects: len(m.current), AccessLog: m.als.Stats()}
	if m.xds != nil {
		s.NACKs = m.xds.NACKs()
	}
	if m.sup != nil {
		s.EnvoyStarts = m.sup.Starts()
	}
	return s
}
