package collector

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// prefixes is a WorkloadNetworks of fixed prefixes.
type prefixes []netip.Prefix

func (p prefixes) Contains(a netip.Addr) bool {
	for _, pre := range p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// TestRecordsOfAWorkloadNotYetDiscoveredAreHeldAndAttributed: a record
// one side of which is an unknown address on a workload network is held
// until an endpoint has it (then attributed) or its window ends (then as
// it is); every other record passes at once; the account balances; a
// full hold holds no more.
func TestRecordsOfAWorkloadNotYetDiscoveredAreHeldAndAttributed(t *testing.T) {
	nets := prefixes{netip.MustParsePrefix("198.18.0.0/24")}
	before, err := NewRegistry(testTopology())
	if err != nil {
		t.Fatal(err)
	}
	topo := testTopology()
	topo.Endpoints = append(topo.Endpoints, ResolvedEndpoint{
		Config:      EndpointConfig{Name: "newcomer", Namespace: "shop", Labels: map[string]string{"app": "new"}},
		HostIfIndex: 12, HostIfName: "veth-new-h",
		IPs: []netip.Addr{netip.MustParseAddr("198.18.0.9")},
	})
	after, err := NewRegistry(topo)
	if err != nil {
		t.Fatal(err)
	}
	flow := func(src, dst string) api.Flow {
		f := cannedFlow(1)
		f.IP.Source, f.IP.Destination = netip.MustParseAddr(src), netip.MustParseAddr(dst)
		f.Interface.Index = 11 // backend's veth
		return f
	}
	var delivered []api.Flow
	deliver := func(f *api.Flow) { delivered = append(delivered, *f) }
	var mu sync.Mutex
	h := newAttributionHold(Attribution{Networks: nets, Window: time.Second, Capacity: 2}, &mu)
	now := time.Unix(1000, 0)
	offer := func(f api.Flow) bool {
		before.Enrich(&f)
		mu.Lock()
		defer mu.Unlock()
		return h.take(&f, now)
	}

	for _, tc := range []struct {
		name string
		f    api.Flow
		held bool
	}{
		{"both sides endpoints", flow("198.18.0.2", "198.18.0.3"), false},
		{"an address outside the workload networks (the world)", flow("203.0.113.7", "198.18.0.3"), false},
		{"the host", flow("198.19.0.1", "198.18.0.3"), false},
		{"an unknown address on a workload network", flow("198.18.0.9", "198.18.0.3"), true},
		{"an unknown address on a workload network, as destination", flow("198.18.0.3", "198.18.0.10"), true},
		{"a third while two are held: the hold is full", flow("198.18.0.11", "198.18.0.3"), false},
	} {
		if got := offer(tc.f); got != tc.held {
			t.Errorf("%s: held %v, want %v", tc.name, got, tc.held)
		}
	}
	if err := h.Stage().Check(); err != nil {
		t.Error(err)
	}
	if st := h.Stage(); st.In != 6 || st.Out != 4 || st.Queued != 2 || st.Detail["not_held_full"] != 1 {
		t.Errorf("account %+v: want in 6, out 4, queued 2, 1 not held (full)", st)
	}

	// The newcomer's endpoint is in force: its record goes on, attributed;
	// the other waits for its window.
	if next := h.release(after, now.Add(100*time.Millisecond), false, deliver); !next.Equal(now.Add(time.Second)) {
		t.Errorf("next release at %v, want the window's end %v", next, now.Add(time.Second))
	}
	if len(delivered) != 1 || delivered[0].Source.PodName != "newcomer" || delivered[0].Source.Identity == uint32(identity.World) {
		t.Fatalf("after the newcomer's endpoint: delivered %+v, want its record attributed", delivered)
	}
	// The window ends: the other goes on as it is, from the world.
	if next := h.release(after, now.Add(time.Second), false, deliver); !next.IsZero() {
		t.Errorf("next release at %v with nothing held", next)
	}
	if len(delivered) != 2 || delivered[1].Destination.Identity != uint32(identity.World) {
		t.Fatalf("after the window: delivered %+v, want the second record from the world", delivered)
	}
	st := h.Stage()
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	if st.In != 6 || st.Out != 6 || st.Queued != 0 || st.Detail["reattributed"] != 1 || st.Detail["expired"] != 1 {
		t.Errorf("account %+v: want everything out, 1 re-attributed, 1 expired", st)
	}
}

// TestARecordThatNeedsNoAttributionIsNotHeldAndAllocatesNothing: with the
// hold on, the pipeline still allocates nothing for a record of known
// endpoints.
func TestARecordThatNeedsNoAttributionIsNotHeldAndAllocatesNothing(t *testing.T) {
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0)}, Attribution: &Attribution{
		Networks: prefixes{netip.MustParsePrefix("198.18.0.0/24")}}})
	if err != nil {
		t.Fatal(err)
	}
	emit := serialize(c.process, &c.pipeMu)
	f := cannedFlow(1)
	if n := testing.AllocsPerRun(1000, func() { emit(&f) }); n != 0 {
		t.Errorf("the pipeline with the hold allocates %v times per flow", n)
	}
	if st := c.Stages(); len(st) != 1 || st[0].Queued != 0 || st[0].In != st[0].Out {
		t.Errorf("stages %+v: nothing should be held", st)
	}
}

// recorder is a Sink keeping copies of what it consumes.
type recorder struct {
	mu    sync.Mutex
	flows []api.Flow
}

func (r *recorder) Consume(f *api.Flow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flows = append(r.flows, *f)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.flows)
}

// TestTheCollectorPassesOnWhatItHoldsWhenItStops runs a collector with
// the hold: a record of known endpoints reaches the sinks at once, one of
// an unknown workload waits (its window is long), and goes on, from the
// world, when the collector stops; none is lost.
func TestTheCollectorPassesOnWhatItHoldsWhenItStops(t *testing.T) {
	known := cannedFlow(1)
	unknown := cannedFlow(2)
	unknown.IP.Source = netip.MustParseAddr("198.18.0.77")
	rec := &recorder{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource([]api.Flow{unknown, known}, 0)},
		Listener: ln, Sinks: []Sink{rec},
		Attribution: &Attribution{Networks: prefixes{netip.MustParsePrefix("198.18.0.0/24")}, Window: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	stop := apitest.Start(t, "collector", c)
	deadline := time.Now().Add(10 * time.Second)
	for rec.len() < 1 || c.Stages()[0].Queued < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d flows passed on, stages %+v: want the known one passed, the unknown held", rec.len(), c.Stages())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := rec.flows[0]; got.IP.Source != known.IP.Source || got.Source.PodName != "frontend-7d4" {
		t.Errorf("passed at once: %+v, want the known endpoints' record", got.Source)
	}
	stop()
	if rec.len() != 2 || rec.flows[1].IP.Source != unknown.IP.Source || rec.flows[1].Source.Identity != uint32(identity.World) {
		t.Fatalf("after the stop: %+v, want the held record passed on from the world", rec.flows)
	}
	st := c.Stages()[0]
	if err := st.Check(); err != nil || st.In != 2 || st.Out != 2 || st.Detail["expired"] != 1 {
		t.Errorf("account %+v (%v): want 2 in, 2 out, 1 to the window's end", st, err)
	}
}
