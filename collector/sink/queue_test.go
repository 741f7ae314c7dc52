package sink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// recordSink keeps the source ports of the flows it is given, and fails the
// first failures writes.
type recordSink struct {
	name     string
	mu       sync.Mutex
	ports    []uint16
	batches  int
	failures int
}

func (s *recordSink) Name() string { return s.name }

func (s *recordSink) Write(_ context.Context, batch []api.Flow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		return errors.New("injected failure")
	}
	s.batches++
	for i := range batch {
		s.ports = append(s.ports, batch[i].L4.SourcePort)
	}
	return nil
}

func (s *recordSink) got() ([]uint16, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint16(nil), s.ports...), s.batches
}

// blockedSink never finishes a write until its context is done.
type blockedSink struct{ calls chan struct{} }

func (s *blockedSink) Name() string { return "blocked" }

func (s *blockedSink) Write(ctx context.Context, _ []api.Flow) error {
	select {
	case s.calls <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestQueue(t *testing.T, s Sink, o QueueOptions) *Queue {
	t.Helper()
	o.Logger = quietLogger()
	q, err := NewQueue(s, o)
	if err != nil {
		t.Fatalf("NewQueue: %v", err)
	}
	return q
}

// runQueues runs the fanout and returns a function that stops it and waits.
func runFanout(fo *Fanout) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fo.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func flowWithPort(p uint16) *api.Flow {
	return &api.Flow{L4: api.L4{Protocol: api.ProtoTCP, SourcePort: p}}
}

func TestBlockedSinkNeitherBlocksTheCallerNorTheOtherSinks(t *testing.T) {
	const n, capacity = 5000, 100
	fast := &recordSink{name: "fast"}
	blocked := &blockedSink{calls: make(chan struct{}, 1)}
	fq := newTestQueue(t, fast, QueueOptions{Capacity: n, BatchSize: 64, FlushInterval: 10 * time.Millisecond})
	bq := newTestQueue(t, blocked, QueueOptions{Capacity: capacity, BatchSize: 10, FlushInterval: 10 * time.Millisecond, DrainTimeout: 20 * time.Millisecond})
	fo := NewFanout([]*Queue{fq, bq})
	stop := runFanout(fo)

	offered := make(chan struct{})
	refused := 0
	go func() {
		defer close(offered)
		for i := range n {
			if i == 2*capacity {
				<-blocked.calls // the blocked sink holds a batch from now on
			}
			if !bq.Offer(flowWithPort(uint16(i))) {
				refused++
			}
			fq.Offer(flowWithPort(uint16(i)))
		}
	}()
	select {
	case <-offered:
	case <-time.After(5 * time.Second):
		t.Fatal("Offer blocked behind a blocked sink")
	}
	stop()

	ports, _ := fast.got()
	if len(ports) != n {
		t.Fatalf("fast sink got %d flows, want %d", len(ports), n)
	}
	for i, p := range ports {
		if p != uint16(i) {
			t.Fatalf("fast sink flow %d has port %d: order lost", i, p)
		}
	}
	if st := fq.Stats(); st != (Stats{Offered: n, Written: n}) {
		t.Errorf("fast queue stats = %+v, want Written %d only", st, n)
	}
	st := bq.Stats()
	if st.Dropped != uint64(refused) {
		t.Errorf("blocked queue counted %d drops, Offer refused %d", st.Dropped, refused)
	}
	if want := uint64(n - capacity); st.Dropped != want {
		t.Errorf("blocked queue dropped %d, want exactly %d (offered %d, capacity %d)", st.Dropped, want, n, capacity)
	}
	if st.Written != 0 || st.Queued != 0 || st.Failed != capacity {
		t.Errorf("blocked queue stats after shutdown = %+v, want the %d held flows counted failed", st, capacity)
	}
}

func TestQueueBatches(t *testing.T) {
	tests := []struct {
		name        string
		capacity    int
		batch       int
		flush       time.Duration
		flows       int
		wantBatches int // after waiting for the flush, before shutdown; -1: don't check
	}{
		{name: "full batches are written without waiting for the timer", capacity: 1000, batch: 10, flush: time.Hour, flows: 100, wantBatches: 10},
		{name: "a partial batch is written when the timer fires", capacity: 1000, batch: 100, flush: 20 * time.Millisecond, flows: 7, wantBatches: 1},
		{name: "batches stop at the end of the ring and wrap", capacity: 15, batch: 10, flush: 20 * time.Millisecond, flows: 15, wantBatches: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &recordSink{name: "rec"}
			q := newTestQueue(t, s, QueueOptions{Capacity: tt.capacity, BatchSize: tt.batch, FlushInterval: tt.flush})
			stop := runFanout(NewFanout([]*Queue{q}))
			defer stop()
			for round := range 3 {
				for i := range tt.flows {
					if !q.Offer(flowWithPort(uint16(round*tt.flows + i))) {
						t.Fatalf("flow %d refused", i)
					}
				}
				waitFor(t, func() bool { return q.Stats().Written == uint64((round+1)*tt.flows) })
			}
			ports, batches := s.got()
			if tt.wantBatches >= 0 && batches != 3*tt.wantBatches {
				t.Errorf("got %d batches, want %d", batches, 3*tt.wantBatches)
			}
			for i, p := range ports {
				if p != uint16(i) {
					t.Fatalf("flow %d has port %d: order lost", i, p)
				}
			}
		})
	}
}

func TestQueueRetriesThenCountsFailures(t *testing.T) {
	tests := []struct {
		name                  string
		failures, maxAttempts int
		wantWritten, wantFail uint64
	}{
		{name: "a batch that fails less than MaxAttempts times is written", failures: 2, maxAttempts: 3, wantWritten: 5},
		{name: "a batch that fails MaxAttempts times is counted failed", failures: 3, maxAttempts: 3, wantFail: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &recordSink{name: "flaky", failures: tt.failures}
			q := newTestQueue(t, s, QueueOptions{BatchSize: 5, MaxAttempts: tt.maxAttempts, RetryBackoff: time.Millisecond})
			stop := runFanout(NewFanout([]*Queue{q}))
			defer stop()
			for i := range 5 {
				q.Offer(flowWithPort(uint16(i)))
			}
			waitFor(t, func() bool { st := q.Stats(); return st.Written+st.Failed == 5 })
			if st := q.Stats(); st.Written != tt.wantWritten || st.Failed != tt.wantFail {
				t.Errorf("stats = %+v, want written %d failed %d", st, tt.wantWritten, tt.wantFail)
			}
		})
	}
}

func TestRunFlushesWhatItHoldsWhenStopped(t *testing.T) {
	s := &recordSink{name: "rec"}
	q := newTestQueue(t, s, QueueOptions{BatchSize: 1000, FlushInterval: time.Hour})
	stop := runFanout(NewFanout([]*Queue{q}))
	for i := range 42 {
		q.Offer(flowWithPort(uint16(i)))
	}
	stop()
	if ports, _ := s.got(); len(ports) != 42 {
		t.Errorf("sink got %d flows at shutdown, want 42", len(ports))
	}
	if st := q.Stats(); st != (Stats{Offered: 42, Written: 42}) {
		t.Errorf("stats = %+v, want Written 42", st)
	}
}

// slowSink takes delay to store a batch, and stores it even when its
// context ends meanwhile (as a server does with a request it has received),
// but then reports the context's error.
type slowSink struct {
	recordSink
	delay   time.Duration
	started chan struct{}
	once    sync.Once
}

func (s *slowSink) Write(ctx context.Context, batch []api.Flow) error {
	s.once.Do(func() { close(s.started) })
	time.Sleep(s.delay)
	if err := s.recordSink.Write(ctx, batch); err != nil {
		return err
	}
	return ctx.Err()
}

func TestAWriteInFlightWhenStoppedIsFinishedNotRepeated(t *testing.T) {
	s := &slowSink{recordSink: recordSink{name: "slow"}, delay: 100 * time.Millisecond, started: make(chan struct{})}
	q := newTestQueue(t, s, QueueOptions{BatchSize: 10, FlushInterval: time.Hour})
	stop := runFanout(NewFanout([]*Queue{q}))
	for i := range 10 {
		q.Offer(flowWithPort(uint16(i)))
	}
	<-s.started
	stop() // mid-write
	if ports, batches := s.got(); len(ports) != 10 || batches != 1 {
		t.Errorf("sink stored %d flows in %d batches, want 10 in 1: a write cut at shutdown was repeated", len(ports), batches)
	}
	if st := q.Stats(); st != (Stats{Offered: 10, Written: 10}) {
		t.Errorf("stats = %+v, want Written 10", st)
	}
}

func TestOfferCopiesTheFlow(t *testing.T) {
	s := &recordSink{name: "rec"}
	q := newTestQueue(t, s, QueueOptions{FlushInterval: time.Hour})
	f := flowWithPort(1)
	q.Offer(f)
	f.L4.SourcePort = 2 // the datapath reuses its Flow
	stop := runFanout(NewFanout([]*Queue{q}))
	stop()
	if ports, _ := s.got(); len(ports) != 1 || ports[0] != 1 {
		t.Errorf("sink got ports %v, want [1]", ports)
	}
}

func TestNewQueueRejectsNegativeOptions(t *testing.T) {
	if _, err := NewQueue(&recordSink{name: "x"}, QueueOptions{Capacity: -1}); err == nil {
		t.Error("NewQueue accepted a negative capacity")
	}
}

type countObserver struct{ n int }

func (c *countObserver) Consume(*api.Flow) { c.n++ }

func TestFanoutCallsObserversAndEveryQueue(t *testing.T) {
	a, b := &recordSink{name: "a"}, &recordSink{name: "b"}
	qa := newTestQueue(t, a, QueueOptions{})
	qb := newTestQueue(t, b, QueueOptions{})
	obs := &countObserver{}
	fo := NewFanout([]*Queue{qa, qb}, obs)
	stop := runFanout(fo)
	for i := range 10 {
		fo.Offer(flowWithPort(uint16(i)))
	}
	stop()
	pa, _ := a.got()
	pb, _ := b.got()
	if obs.n != 10 || len(pa) != 10 || len(pb) != 10 {
		t.Errorf("observer saw %d, sinks got %d and %d; want 10 each", obs.n, len(pa), len(pb))
	}
	if len(fo.Queues()) != 2 {
		t.Errorf("Queues() has %d queues, want 2", len(fo.Queues()))
	}
}

func BenchmarkOffer(b *testing.B) {
	q, err := NewQueue(&recordSink{name: "x"}, QueueOptions{Capacity: 1024, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	f := flowWithPort(1)
	b.ReportAllocs()
	for b.Loop() {
		q.Offer(f) // the queue is full after 1024: this measures the drop path too
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTheRingGrowsWithWhatItHoldsAndShrinksOnceEmpty(t *testing.T) {
	s := &recordSink{name: "rec"}
	q := newTestQueue(t, s, QueueOptions{Capacity: 64 * minRing, BatchSize: 64 * minRing})
	if len(q.ring) != minRing {
		t.Fatalf("a new queue's ring holds %d flows, want %d: it is allocated as it fills", len(q.ring), minRing)
	}
	offer := func(n int, from uint16) {
		for i := range n {
			if !q.Offer(&api.Flow{L4: api.L4{SourcePort: from + uint16(i)}}) {
				t.Fatalf("flow %d dropped below Capacity", i)
			}
		}
	}
	// Wrap the ring before it grows, so growing keeps the order.
	offer(minRing/2, 0)
	q.release(false, 0, false)
	q.mu.Lock()
	q.advance(minRing / 4)
	q.mu.Unlock()
	offer(5*minRing, 10000)
	if len(q.ring) != 8*minRing {
		t.Fatalf("ring of %d for %d flows, want %d", len(q.ring), q.n, 8*minRing)
	}
	batch, _ := q.next(false)
	if len(batch) == 0 || batch[0].L4.SourcePort != minRing/4 {
		t.Fatalf("the oldest flow after growing is port %d, want %d", batch[0].L4.SourcePort, minRing/4)
	}
	// Emptied, with a high-water mark of a quarter of the ring or less: no
	// shrink (the mark is this window's). Two windows later it shrinks.
	q.release(false, len(batch), true)
	for q.n > 0 {
		b, _ := q.next(false)
		q.release(false, len(b), true)
	}
	if len(q.ring) != 8*minRing {
		t.Fatalf("ring shrank to %d with its high-water mark %d still in the window", len(q.ring), q.peak[0])
	}
	for range 2 {
		q.window = q.window.Add(-shrinkWindow)
		offer(1, 1)
		b, _ := q.next(false)
		q.release(false, len(b), true)
	}
	if len(q.ring) != minRing {
		t.Fatalf("ring of %d after two quiet windows, want %d", len(q.ring), minRing)
	}
}
