package ui

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
)

// The lab: a small shop. Flows are enriched by the real collector from
// these endpoints' addresses.
var (
	ipFrontend = netip.MustParseAddr("10.0.1.10")
	ipBackend  = netip.MustParseAddr("10.0.1.20")
	ipDB       = netip.MustParseAddr("10.0.2.30")
	ipOutsider = netip.MustParseAddr("10.0.9.66")
	ipDNS      = netip.MustParseAddr("10.0.0.53")
	ipPayments = netip.MustParseAddr("10.0.2.40")
	// The frontend's link-local address and the host's own address.
	llFrontend = netip.MustParseAddr("fe80::f")
	ipHost     = netip.MustParseAddr("10.0.0.1")
)

func labTopology() *collector.Topology {
	ep := func(name, ns, app string, ifindex uint32, ip netip.Addr) collector.ResolvedEndpoint {
		return collector.ResolvedEndpoint{
			Config:      collector.EndpointConfig{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
			HostIfIndex: ifindex, HostIfName: "lxc" + name[:min(len(name), 8)],
			IPs: []netip.Addr{ip},
		}
	}
	topo := &collector.Topology{
		NodeName:  "node-a",
		HostAddrs: []netip.Addr{ipHost},
		Endpoints: []collector.ResolvedEndpoint{
			ep("frontend-6f7c9", "default", "frontend", 11, ipFrontend),
			ep("backend-59d4b", "default", "backend", 12, ipBackend),
			ep("postgres-0", "data", "db", 13, ipDB),
			ep("outsider-x1", "untrusted", "outsider", 14, ipOutsider),
			ep("coredns-7db6", "kube-system", "coredns", 15, ipDNS),
			ep("payments-88a", "data", "payments", 16, ipPayments),
		},
	}
	topo.Endpoints[0].LinkLocal = []netip.Addr{llFrontend}
	return topo
}

// pattern is one kind of traffic in the lab.
type pattern struct {
	src, dst netip.Addr
	ifindex  uint32
	proto    uint8
	dport    uint16
	verdict  api.Verdict
	weight   int
}

var patterns = []pattern{
	{ipFrontend, ipBackend, 11, api.ProtoTCP, 8080, api.VerdictForwarded, 6},
	{ipBackend, ipDB, 12, api.ProtoTCP, 5432, api.VerdictForwarded, 3},
	{ipOutsider, ipDB, 13, api.ProtoTCP, 5432, api.VerdictDropped, 2},
	{ipFrontend, ipDNS, 11, api.ProtoUDP, 53, api.VerdictForwarded, 2},
	{ipBackend, ipPayments, 12, api.ProtoTCP, 443, api.VerdictAudit, 1},
}

var patternIndex = func() []int {
	var idx []int
	for i, p := range patterns {
		for range p.weight {
			idx = append(idx, i)
		}
	}
	return idx
}()

// labFlow is the n-th flow of the lab at time now; the datapath fills what
// the collector then enriches.
func labFlow(n int, now time.Time) api.Flow {
	p := patterns[patternIndex[n%len(patternIndex)]]
	f := api.Flow{
		Time:      now,
		Verdict:   p.verdict,
		Type:      api.FlowTypeL3L4,
		IP:        api.IP{Source: p.src, Destination: p.dst, Version: api.IPv4},
		L4:        api.L4{Protocol: p.proto, SourcePort: uint16(32768 + n%28000), DestinationPort: p.dport},
		Interface: api.Interface{Index: p.ifindex},
		Event:     api.EventKind(1 + n%4),
		StartTime: now.Add(-time.Duration(n%5000) * time.Millisecond),
		EndTime:   now,
	}
	f.UUID[0], f.UUID[1], f.UUID[2], f.UUID[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	f.UUID[6] = 0x40
	if p.proto == api.ProtoTCP {
		f.L4.TCPFlags = [...]api.TCPFlags{api.TCPFlagSYN, api.TCPFlagSYN | api.TCPFlagACK,
			api.TCPFlagACK | api.TCPFlagPSH, api.TCPFlagFIN | api.TCPFlagACK}[n%4]
	}
	switch p.verdict {
	case api.VerdictDropped:
		f.DropReason = api.DropReasonPolicyDenied
		f.L4.TCPFlags = api.TCPFlagSYN
		f.Counters = api.Counters{PacketsForward: 1, BytesForward: 60}
		f.IngressDeniedBy = []api.PolicyRef{{Name: "db-ingress", Namespace: "data", Kind: "CiliumNetworkPolicy", Revision: 3}}
	default:
		k := uint64(1 + n%40)
		f.Counters = api.Counters{PacketsForward: k, BytesForward: k * 420, PacketsReply: k, BytesReply: k * 1310}
		f.EgressAllowedBy = []api.PolicyRef{{Name: "allow-app", Namespace: "default", Kind: "NetworkPolicy", Revision: 2}}
	}
	return f
}

// rateSource is a collector.Source emitting lab flows at a settable rate
// (flows per second), in ticks of 10 ms.
type rateSource struct {
	rate atomic.Int64
	n    int
}

func (s *rateSource) Name() string { return "lab" }

func (s *rateSource) Run(ctx context.Context, emit func(*api.Flow)) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var f api.Flow
	debt := 0.0
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			debt += float64(s.rate.Load()) * now.Sub(last).Seconds()
			last = now
			for ; debt >= 1; debt-- {
				f = labFlow(s.n, now)
				s.n++
				emit(&f)
			}
		}
	}
}

// lab is a running collector with the UI mounted at "GET /", as the
// collector command wires it.
type lab struct {
	c    *collector.Collector
	ui   *UI
	src  *rateSource
	base string
}

// startLab runs the lab at rate flows per second, with more sources next to
// the lab's own when given.
func startLab(t testing.TB, rate int, opts Options, more ...collector.Source) *lab {
	t.Helper()
	src := &rateSource{}
	src.rate.Store(int64(rate))
	l := &lab{src: src}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	// The UI needs the store, the collector needs the UI's handler: the
	// handler is mounted through an indirection filled in below.
	var mounted atomicHandler
	c, err := collector.New(collector.Options{
		Topology: labTopology(),
		Sources:  append([]collector.Source{src}, more...),
		Listener: ln,
		RingSize: 65536,
		Handlers: map[string]http.Handler{"GET /": &mounted},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Source = c.Store()
	u, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mounted.set(u)
	l.c, l.ui = c, u
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		u.Close()
		if err := <-done; err != nil {
			t.Errorf("collector Run: %v", err)
		}
	})
	<-c.Ready()
	l.base = "http://" + c.Addr().String()
	return l
}

// atomicHandler lets a handler be mounted before it exists.
type atomicHandler struct {
	mu sync.RWMutex
	h  http.Handler
}

func (a *atomicHandler) set(h http.Handler) { a.mu.Lock(); a.h = h; a.mu.Unlock() }

func (a *atomicHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.RLock()
	h := a.h
	a.mu.RUnlock()
	h.ServeHTTP(w, r)
}

// artifactDir is where screenshots go: $PERISCOPE_ARTIFACTS/<test> when
// set, else the test's artifact directory (kept with go test -artifacts).
func artifactDir(t testing.TB) string {
	if d := os.Getenv("PERISCOPE_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, filepath.Base(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	type artifacter interface{ ArtifactDir() string }
	if a, ok := t.(artifacter); ok {
		return a.ArtifactDir()
	}
	return t.TempDir()
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
