package clickhouse

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
)

// outageDuration is how long the outage test keeps ClickHouse down: the
// issue's 30s (OutageBudget), under a steady load across it (the test takes
// about 40s). The spool tests use shortOutage: the same path, shorter.
const (
	outageDuration = OutageBudget
	shortOutage    = 5 * time.Second
)

// runQueue assembles a pipeline whose one sink is s behind a queue with o,
// runs it, and returns the queue and the function that stops the pipeline
// (the queue drains, its spool closes; s stays open).
func runQueue(t testing.TB, s sink.Sink, o sink.QueueOptions) (*sink.Queue, func()) {
	t.Helper()
	o.Logger = quietLogger()
	a, err := sink.Open(context.Background(), sink.Env{Logger: quietLogger()}, sink.Queued(s, o))
	if err != nil {
		t.Fatal(err)
	}
	stop := a.Start(context.Background())
	return a.Queues()[0], func() {
		if err := stop(); err != nil {
			t.Errorf("stop the pipeline: %v", err)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkExactlyOnce(t *testing.T, s *Store, want []api.Flow) {
	t.Helper()
	wn, wsum := chtest.Checksum(want)
	n, distinct, sum := tableChecksum(t, s)
	if n != wn || distinct != wn || sum != wsum {
		t.Errorf("table has %d rows (%d distinct uuids, checksum %d); want %d rows, checksum %d", n, distinct, sum, wn, wsum)
	} else {
		t.Logf("%d rows, each once; checksum %d matches", n, sum)
	}
}

func TestEveryFlowOfARunArrivesExactlyOnce(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	flows := genFlows(7, 20000, time.Now().Add(-time.Minute))
	q, stop := runQueue(t, s, sink.QueueOptions{Capacity: 32768, BatchSize: 2000, FlushInterval: 50 * time.Millisecond})
	for i := range flows {
		if !q.Offer(&flows[i]) {
			t.Fatalf("flow %d refused", i)
		}
	}
	waitFor(t, 30*time.Second, "all flows written", func() bool { return q.Stats().Written == uint64(len(flows)) })
	stop()
	if st := q.Stats(); st != (sink.Stats{Offered: uint64(len(flows)), Written: uint64(len(flows))}) {
		t.Errorf("queue stats %+v", st)
	}
	checkExactlyOnce(t, s, flows)

	var bytes, ended, started uint64
	for i := range flows {
		switch flows[i].Event {
		case api.EventEnd:
			ended++
			bytes += flows[i].Counters.BytesForward + flows[i].Counters.BytesReply
		case api.EventStart:
			started++
		}
	}
	want := itoa(len(flows)) + "\t" + u64(started) + "\t" + u64(ended) + "\t" + u64(bytes)
	if got := srv.Query("SELECT sum(records), sum(flows), sum(ended), sum(bytes) FROM periscope.flows_1m"); got != want {
		t.Errorf("rollup sums %q, want %q", got, want)
	}
}

func TestOutageUnderLoadLosesAndDoublesNothing(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	const n = 110000 // ~3000 flows/s from before the outage to after it
	flows := genFlows(8, n, time.Now().Add(-time.Minute))
	q, stop := runQueue(t, s, sink.QueueOptions{
		Capacity: n, BatchSize: 500, FlushInterval: 20 * time.Millisecond,
		MaxAttempts: 1000, RetryBackoff: 100 * time.Millisecond,
	})
	var offered atomic.Int64
	producerDone := make(chan struct{})
	go func() { // a steady load across the outage: ~3000 flows/s
		defer close(producerDone)
		for i := range flows {
			if !q.Offer(&flows[i]) {
				t.Errorf("flow %d refused", i)
			}
			offered.Add(1)
			if i%30 == 29 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	waitFor(t, 10*time.Second, "some flows written", func() bool { return q.Stats().Written > 2000 })
	srv.Kill() // a crash, mid-insert for all we know
	t.Logf("ClickHouse killed after %d flows offered, %d written; down for %s", offered.Load(), q.Stats().Written, outageDuration)
	time.Sleep(outageDuration)
	srv.Start()
	if o := offered.Load(); o == n {
		t.Errorf("the load ended before ClickHouse came back: it did not span the outage")
	} else {
		t.Logf("ClickHouse back after %d flows offered, %d held", o, q.Stats().Queued)
	}
	<-producerDone
	waitFor(t, 120*time.Second, "all flows written after the restart", func() bool { return q.Stats().Written == n })
	stop()
	st := q.Stats()
	if st.Dropped != 0 || st.Failed != 0 || st.Spooled != 0 {
		t.Errorf("queue stats %+v: nothing may be dropped or failed", st)
	}
	t.Logf("sink stats %+v", s.Stats())
	checkExactlyOnce(t, s, flows)
}

func TestQueueTooSmallForAnOutageCountsExactlyTheMissingRows(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	const n, capacity = 5000, 1000
	flows := genFlows(9, n, time.Now().Add(-time.Minute))
	q, stop := runQueue(t, s, sink.QueueOptions{
		Capacity: capacity, BatchSize: 200, FlushInterval: 20 * time.Millisecond,
		MaxAttempts: 1000, RetryBackoff: 50 * time.Millisecond,
	})
	for i := range 1000 {
		q.Offer(&flows[i])
	}
	waitFor(t, 10*time.Second, "first flows written", func() bool { return q.Stats().Written == 1000 })
	srv.Kill()
	var kept []api.Flow
	kept = append(kept, flows[:1000]...)
	for i := 1000; i < n; i++ {
		if q.Offer(&flows[i]) {
			kept = append(kept, flows[i])
		}
	}
	srv.Start()
	waitFor(t, 120*time.Second, "queue drained", func() bool { return q.Stats().Queued == 0 })
	stop()
	st := q.Stats()
	rows, _, _ := tableChecksum(t, s)
	t.Logf("queue stats %+v, rows %d", st, rows)
	if st.Failed != 0 || st.Dropped == 0 {
		t.Errorf("queue stats %+v: want drops and no failures", st)
	}
	if rows+st.Dropped != n {
		t.Errorf("%d rows + %d dropped != %d offered", rows, st.Dropped, n)
	}
	checkExactlyOnce(t, s, kept)
}

func TestRetryAfterASendThatReachedTheServerDoesNotDuplicate(t *testing.T) {
	s, _ := openStore(t, nil, "periscope")
	ctx := context.Background()
	const n = 10000 // more UUIDs than a literal list in the query text could hold
	batch := genFlows(10, n, time.Now().Add(-time.Minute))
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// As if the Send had failed after the server committed: the Queue
	// re-calls Write with the same batch.
	s.uncertain = &uncertainInsert{queryID: "periscope-insert-simulated"}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, s, batch)
	if st := s.Stats(); st.Deduplicated != n || st.Inserted != n {
		t.Errorf("sink stats %+v, want %d inserted and %d deduplicated", st, n, n)
	}
	// A retried batch of which only part reached the server (or a new batch
	// after an uncertain one): only the missing rows are sent.
	more := genFlows(11, 500, time.Now().Add(-time.Minute))
	mixed := append(append([]api.Flow{}, batch[:300]...), more...)
	s.uncertain = &uncertainInsert{queryID: "periscope-insert-simulated"}
	if err := s.Write(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, s, append(append([]api.Flow{}, batch...), more...))
	// Without uncertainty nothing is checked: a plain Write is one insert.
	if s.uncertain != nil {
		t.Error("uncertainty not cleared after a successful Write")
	}
}

func u64(n uint64) string { return itoa(int(n)) }
