package collector

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
)

// overlapSink counts flows and the calls that overlapped another.
type overlapSink struct {
	inside, overlaps, flows atomic.Int64
}

func (s *overlapSink) Consume(*api.Flow) {
	if s.inside.Add(1) != 1 {
		s.overlaps.Add(1)
	}
	runtime.Gosched() // let another source in, were the pipeline unguarded
	s.flows.Add(1)
	s.inside.Add(-1)
}

// recordSink keeps a copy of every flow.
type recordSink struct {
	mu    sync.Mutex
	flows []api.Flow
}

func (s *recordSink) Consume(f *api.Flow) {
	s.mu.Lock()
	s.flows = append(s.flows, *f)
	s.mu.Unlock()
}

func (s *recordSink) got() []api.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]api.Flow(nil), s.flows...)
}

// waitUntil polls cond until it holds or a generous deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSourcesRunConcurrentlyThroughOnePipelineCallAtATime(t *testing.T) {
	const n = 20000
	kernel := apitest.NewSource(nil, 0)
	for i := range n {
		kernel.Canned = append(kernel.Canned, cannedFlow(i%1000+1))
	}
	fe, be := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	t0 := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	var l7 []api.Flow
	for i := range n / 2 {
		l7 = append(l7, apitest.HTTPExchange{
			Client: netip.AddrPortFrom(fe, 40000), Server: netip.AddrPortFrom(be, 8080),
			Method: "GET", URL: "http://backend:8080/items", Code: 200, Latency: time.Millisecond,
		}.Flows(t0.Add(time.Duration(i)*time.Microsecond))...)
	}
	proxy := apitest.NewL7Source(l7, 0)
	sink := &overlapSink{}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{kernel, proxy}, Sinks: []Sink{sink},
		Listen: "127.0.0.1:0", RingSize: 4 * n})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", c)
	waitUntil(t, "every flow of both sources", func() bool { return sink.flows.Load() == 2*n })
	if o := sink.overlaps.Load(); o != 0 {
		t.Errorf("%d pipeline calls overlapped another", o)
	}
}

func TestAnL7RecordOfASourceIsEnriched(t *testing.T) {
	fe, be := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	flows := apitest.HTTPExchange{
		Client: netip.AddrPortFrom(fe, 40000), Server: netip.AddrPortFrom(be, 8080),
		Method: "PUT", URL: "http://backend:8080/applicants/103294", Code: 201, Latency: 12 * time.Millisecond,
		Direction: api.TrafficDirectionIngress,
	}.Flows(time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC))
	rec := &recordSink{}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0), apitest.NewL7Source(flows, 0)},
		Sinks: []Sink{rec}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", c)
	waitUntil(t, "both records", func() bool { return len(rec.got()) == 2 })
	got := rec.got()
	feEP, _ := c.Registry().LookupIP(fe)
	beEP, _ := c.Registry().LookupIP(be)
	for i, want := range []struct {
		src, dst api.Endpoint
		typ      api.L7FlowType
	}{{feEP, beEP, api.L7TypeRequest}, {beEP, feEP, api.L7TypeResponse}} {
		f := got[i]
		if f.Source.PodName != want.src.PodName || f.Source.Identity != want.src.Identity || f.Source.Identity == 0 ||
			f.Destination.PodName != want.dst.PodName || f.Destination.Identity != want.dst.Identity {
			t.Errorf("record %d: source %+v destination %+v, want %s → %s", i, f.Source, f.Destination, want.src.PodName, want.dst.PodName)
		}
		if f.TrafficDirection != api.TrafficDirectionIngress || f.NodeName != "node1" {
			t.Errorf("record %d: direction %v node %q, want the producer's INGRESS on node1", i, f.TrafficDirection, f.NodeName)
		}
		if f.L7 == nil || f.L7.Type != want.typ || f.L7.HTTP == nil || f.L7.HTTP.Method != "PUT" {
			t.Errorf("record %d: L7 %+v, want the %v", i, f.L7, want.typ)
		}
	}
}

// failingSource emits one flow, then fails.
type failingSource struct{}

func (failingSource) Name() string { return "broken" }

func (failingSource) Run(_ context.Context, emit func(*api.Flow)) error {
	f := cannedFlow(1)
	emit(&f)
	return errors.New("the access log stream went away")
}

// endingSource returns at once, as a source with nothing more to say.
type endingSource struct{}

func (endingSource) Name() string { return "done" }

func (endingSource) Run(context.Context, func(*api.Flow)) error { return nil }

func TestAFailingSourceEndsRunNamingIt(t *testing.T) {
	healthy := apitest.NewSource(nil, 0)
	rec := &recordSink{}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{healthy, failingSource{}}, Sinks: []Sink{rec},
		Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "flow source broken: the access log stream went away") {
			t.Errorf("Run: %v, want the failing source named", err)
		}
		if strings.Contains(err.Error(), "flow source test") {
			t.Errorf("Run: %v: the healthy source, stopped by the failure, is reported too", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not end when a source failed")
	}
	if n := len(rec.got()); n != 1 {
		t.Errorf("the pipeline saw %d flows, want the failing source's one", n)
	}
}

func TestASourceThatEndsLeavesTheOthersRunning(t *testing.T) {
	live := apitest.NewSource(nil, 1)
	rec := &recordSink{}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{endingSource{}, live}, Sinks: []Sink{rec},
		Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", c)
	live.Live <- cannedFlow(1)
	waitUntil(t, "the live flow", func() bool { return len(rec.got()) == 1 })
}

func TestRunEndsWhenItsOnlySourceEnds(t *testing.T) {
	c, err := New(Options{Topology: testTopology(), Sources: []Source{endingSource{}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Run(ctx); err != nil || ctx.Err() != nil {
		t.Errorf("Run: %v (context: %v), want nil before the deadline", err, ctx.Err())
	}
}

func TestNewRejectsANilSource(t *testing.T) {
	_, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0), nil}})
	if err == nil || !strings.Contains(err.Error(), "flow source 1 is nil") {
		t.Errorf("New: %v, want the nil source named", err)
	}
}

func TestThePipelineOfSeveralSourcesAllocatesNothing(t *testing.T) {
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0), apitest.NewSource(nil, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	emit := serialize(c.process, &c.pipeMu)
	f := cannedFlow(1)
	if n := testing.AllocsPerRun(1000, func() { emit(&f) }); n != 0 {
		t.Errorf("the serialized pipeline allocates %v times per flow", n)
	}
}

// BenchmarkPipeline is the cost per flow of enrich → ring → sinks, called as
// one source calls it and as one of several (through the lock).
func BenchmarkPipeline(b *testing.B) {
	for _, sources := range []int{1, 2} {
		b.Run(map[int]string{1: "one source", 2: "several sources"}[sources], func(b *testing.B) {
			c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0)}})
			if err != nil {
				b.Fatal(err)
			}
			var mu *sync.Mutex
			if sources > 1 {
				mu = &c.pipeMu
			}
			emit := serialize(c.process, mu)
			f := cannedFlow(1)
			b.ReportAllocs()
			for b.Loop() {
				emit(&f)
			}
		})
	}
}
