package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one upstream exchange: below the 5 s a stub
	// resolver (glibc, dig) waits per try, so the client gets SERVFAIL
	// rather than its own timeout.
	DefaultTimeout     = 4 * time.Second
	DefaultIdleTimeout = 10 * time.Second
	DefaultMaxInFlight = 1024
	DefaultMaxTCPConns = 512
	DefaultRecordQueue = 4096
)

// Endpoints finds the local endpoint that owns an address;
// *collector.Registry satisfies it.
type Endpoints interface {
	LookupIP(ip netip.Addr) (api.Endpoint, bool)
}

// Policy judges a query; *dnsmatch.Table satisfies it.
type Policy interface {
	Check(q dnsmatch.Query) dnsmatch.Verdict
}

// Cache records allowed answers and admits their addresses before Record
// returns; *fqdn.Cache satisfies it.
type Cache interface {
	Record(a fqdn.Answer) error
}

// QuickCache is a Cache that can also record an answer without waiting:
// TryRecord records it and reports true when its addresses are admitted
// already, and reports false when the admission would wait (its entries
// may be cached already); the proxy then calls Record, in a goroutine of
// its own, which admits it. *fqdn.Cache satisfies it.
type QuickCache interface {
	Cache
	TryRecord(a fqdn.Answer) (bool, error)
}

// Options configure a Proxy.
type Options struct {
	// Listen are the addresses to serve, UDP and TCP on each. Port 0 picks
	// a free port: one port for all the addresses whose port is 0 (the
	// datapath's redirect wants 127.0.0.1 and ::1 at one port). Required.
	Listen []netip.AddrPort
	// Endpoints, Policy: required. Cache: nil caches nothing.
	Endpoints Endpoints
	Policy    Policy
	Cache     Cache
	// FromClient makes upstream sockets bind the client's address
	// (IP_TRANSPARENT), so the server sees the endpoint, as the datapath's
	// redirect expects; it needs the redirect to steer their replies back
	// (UpstreamMark). Without it upstream sockets use the host's address.
	FromClient bool
	// UpstreamMark is the SO_MARK of upstream sockets
	// (datapath.ProxyMarkUpstream: never redirected, replies steered back
	// to the proxy); 0 sets none.
	UpstreamMark uint32
	// Timeout bounds an upstream exchange (DefaultTimeout when zero).
	Timeout time.Duration
	// IdleTimeout closes a client's idle TCP connection.
	IdleTimeout time.Duration
	// MaxInFlight bounds the queries being handled; more get SERVFAIL.
	MaxInFlight int
	// MaxTCPConns bounds client TCP connections; more are closed.
	MaxTCPConns int
	// RecordQueue bounds the records waiting for Run's emit; more are lost
	// (counted).
	RecordQueue int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Proxy is the transparent DNS proxy. New binds its sockets; Run serves
// them and emits the records, until its context ends.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	exchange exchangeFunc

	up    *upstream
	raw   *rawReplier
	udp   []*net.UDPConn
	tcp   []*net.TCPListener
	addrs []netip.AddrPort

	udpUp    *udpExchanges
	inFlight chan struct{}
	tcpSlots chan struct{}
	records  *recordQueue
	stats    counters
	ownTimes ownTimes // of forwarded queries (owntime.go)

	mu          sync.Mutex
	conns       map[net.Conn]struct{}
	closed      bool
	lastLog     time.Time
	releaseOnce sync.Once
}

// counters are the proxy's Stats, updated without locks.
type counters struct {
	queries, denied, audited, malformed, unknownEndpoint atomic.Uint64
	timeouts, upstreamErrors, overload, recordsLost      atomic.Uint64
}

// Stats are the proxy's counters.
type Stats struct {
	Queries         uint64 // queries received
	Denied          uint64 // answered REFUSED by policy
	Audited         uint64 // denied by policy, forwarded in audit mode
	Malformed       uint64 // not a parsable single-question query
	UnknownEndpoint uint64 // from an address no endpoint owns (SERVFAIL)
	Timeouts        uint64 // the server did not answer in time (SERVFAIL)
	UpstreamErrors  uint64 // other forwarding failures (SERVFAIL)
	Overload        uint64 // refused for MaxInFlight or MaxTCPConns
	RecordsLost     uint64 // records dropped on a full queue
}

// New validates opts and binds the listeners.
func New(opts Options) (*Proxy, error) {
	switch {
	case len(opts.Listen) == 0:
		return nil, errors.New("dns proxy: no listen address")
	case opts.Endpoints == nil:
		return nil, errors.New("dns proxy: no endpoint lookup")
	case opts.Policy == nil:
		return nil, errors.New("dns proxy: no policy")
	}
	setDefault(&opts.Timeout, DefaultTimeout)
	setDefault(&opts.IdleTimeout, DefaultIdleTimeout)
	setDefault(&opts.MaxInFlight, DefaultMaxInFlight)
	setDefault(&opts.MaxTCPConns, DefaultMaxTCPConns)
	setDefault(&opts.RecordQueue, DefaultRecordQueue)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	raw, err := newRawReplier()
	if err != nil {
		return nil, fmt.Errorf("dns proxy: %w", err)
	}
	p := &Proxy{
		opts: opts, log: log.With("component", "dnsproxy"), up: &upstream{mark: opts.UpstreamMark}, raw: raw,
		inFlight: make(chan struct{}, opts.MaxInFlight),
		udpUp:    newUDPExchanges(opts.UpstreamMark, opts.Timeout),
		tcpSlots: make(chan struct{}, opts.MaxTCPConns),
		records:  newRecordQueue(opts.RecordQueue),
		conns:    make(map[net.Conn]struct{}),
	}
	p.exchange = p.up.exchange
	if raw.transparent {
		p.log.Info("no CAP_NET_RAW: UDP replies go out of transparent sockets, one per reply (slower than a raw socket)")
	}
	if err := p.bind(); err != nil {
		p.Close()
		return nil, fmt.Errorf("dns proxy: %w", err)
	}
	return p, nil
}

// bind binds every listen address; those of port 0 share the port the
// first of them got (tried again with another port when it is taken on a
// later address).
func (p *Proxy) bind() error {
	var err error
	for range 20 {
		shared := uint16(0)
		for _, a := range p.opts.Listen {
			want := a
			if a.Port() == 0 && shared != 0 {
				want = netip.AddrPortFrom(a.Addr(), shared)
			}
			var u *net.UDPConn
			var t *net.TCPListener
			if u, t, err = listenPair(context.Background(), want); err != nil {
				break
			}
			p.udp, p.tcp = append(p.udp, u), append(p.tcp, t)
			bound := u.LocalAddr().(*net.UDPAddr).AddrPort()
			p.addrs = append(p.addrs, netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()))
			if a.Port() == 0 && shared == 0 {
				shared = bound.Port()
			}
		}
		if err == nil {
			return nil
		}
		for i := range p.udp {
			p.udp[i].Close()
			p.tcp[i].Close()
		}
		p.udp, p.tcp, p.addrs = nil, nil, nil
		if shared == 0 { // not a clash on a shared port: trying again won't help
			return err
		}
	}
	return err
}

func setDefault[T time.Duration | int](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Name is the proxy's name as a collector source.
func (p *Proxy) Name() string { return "dns-proxy" }

// Addrs are the bound addresses (UDP and TCP share each).
func (p *Proxy) Addrs() []netip.AddrPort { return p.addrs }

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	s := &p.stats
	return Stats{
		Queries: s.queries.Load(), Denied: s.denied.Load(), Audited: s.audited.Load(), Malformed: s.malformed.Load(),
		UnknownEndpoint: s.unknownEndpoint.Load(), Timeouts: s.timeouts.Load(),
		UpstreamErrors: s.upstreamErrors.Load(), Overload: s.overload.Load(), RecordsLost: s.recordsLost.Load(),
	}
}

// Close closes every socket; Run does it when it returns, so only a proxy
// that never ran needs Close.
func (p *Proxy) Close() error {
	p.stopListening()
	p.release()
	return nil
}

// stopListening stops taking queries: TCP listeners close, UDP reads and
// client connections' reads end, but their sockets stay open so that the
// handlers still running can answer (SERVFAIL, when shutdown cut their
// exchange short).
func (p *Proxy) stopListening() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	past := time.Unix(1, 0)
	for c := range p.conns {
		c.SetReadDeadline(past)
	}
	for _, u := range p.udp {
		u.SetReadDeadline(past)
	}
	for _, t := range p.tcp {
		t.Close()
	}
}

// release closes every socket, once no handler runs.
func (p *Proxy) release() {
	p.releaseOnce.Do(func() {
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		for _, u := range p.udp {
			u.Close()
		}
		if p.udpUp != nil {
			p.udpUp.close()
		}
		if p.raw != nil {
			p.raw.Close()
		}
	})
}

// Run serves until ctx is done and calls emit, from this goroutine only,
// with every query's and answer's L7 record (a collector Source). On
// return the sockets are closed and every handler has finished.
func (p *Proxy) Run(ctx context.Context, emit func(*api.Flow)) error {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, u := range p.udp {
		wg.Go(func() { p.serveUDP(u) })
	}
	for _, t := range p.tcp {
		wg.Go(func() { p.serveTCP(hctx, t, &wg) })
	}
	p.log.Info("dns proxy serving", "addrs", p.addrs)
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		p.stopListening()
		wg.Wait()
		p.udpUp.close() // the UDP queries waiting get SERVFAIL
		p.release()
		close(done)
	}()
	var batch []*api.Flow
	emitAll := func() bool {
		batch = p.records.take(batch)
		for _, f := range batch {
			emit(f)
		}
		return len(batch) > 0
	}
	linger := time.NewTimer(recordLinger)
	defer linger.Stop()
	for {
		select {
		case <-p.records.ready:
		case <-done:
			emitAll()
			return nil
		}
		// Records keep coming under load: take them every recordLinger,
		// not one wake-up each, until a wait brings none.
		for emitAll() {
			linger.Reset(recordLinger)
			select {
			case <-linger.C:
			case <-done:
				emitAll()
				return nil
			}
		}
	}
}

// recordLinger is how long Run waits for more records once some came: the
// most a record waits for emit under load.
const recordLinger = 5 * time.Millisecond

// queue hands a record to Run without blocking.
func (p *Proxy) queue(f *api.Flow) {
	if !p.records.push(f) {
		p.stats.recordsLost.Add(1)
	}
}

// logErr logs a forwarding failure at most once a second; the counters
// keep every one.
func (p *Proxy) logErr(err error) {
	p.mu.Lock()
	now := time.Now()
	quiet := now.Sub(p.lastLog) < time.Second
	if !quiet {
		p.lastLog = now
	}
	p.mu.Unlock()
	if !quiet {
		p.log.Warn("dns query failed", "err", err)
	}
}

// isClosed reports whether the proxy stopped listening.
func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
