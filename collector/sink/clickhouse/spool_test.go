package clickhouse

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
)

// steadyLoad offers flows at ~3000/s on its own goroutine; the returned
// channel is closed when all were offered. refused counts refusals. With
// headroom > 0 it also waits (up to a second per step) while more than
// headroom flows are queued: a stream the spool can keep up with even on a
// loaded machine, where fsyncs are slow.
func steadyLoad(q *sink.Queue, flows []api.Flow, offered, refused *atomic.Int64, headroom int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range flows {
			if !q.Offer(&flows[i]) {
				refused.Add(1)
			}
			offered.Add(1)
			if i%30 == 29 {
				time.Sleep(10 * time.Millisecond)
				deadline := time.Now().Add(time.Second)
				for headroom > 0 && q.Stats().Queued > headroom && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	return done
}

// spoolQueueOptions: a ring far too small for the outage, a spool in dir.
func spoolQueueOptions(dir string, maxBytes int64) sink.QueueOptions {
	return sink.QueueOptions{
		Capacity: 4000, BatchSize: 500, FlushInterval: 20 * time.Millisecond,
		RetryBackoff: 100 * time.Millisecond, DrainTimeout: time.Second,
		SpoolDir: dir, SpoolMaxBytes: maxBytes,
	}
}

func TestSpoolRidesOutAnOutageTheQueueCannotHold(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	const n = 20000
	flows := genFlows(12, n, time.Now().Add(-time.Minute))
	q, stop := runQueue(t, s, spoolQueueOptions(t.TempDir(), 1<<30))
	var offered, refused atomic.Int64
	done := steadyLoad(q, flows, &offered, &refused, 2000)
	waitFor(t, 10*time.Second, "some flows written", func() bool { return q.Stats().Written > 2000 })
	srv.Kill()
	time.Sleep(shortOutage)
	st := q.Stats()
	t.Logf("after %s down: %d offered, stats %+v", shortOutage, offered.Load(), st)
	if st.Spooled <= 4000 {
		t.Errorf("only %d flows spooled: the outage did not outgrow the ring", st.Spooled)
	}
	srv.Start()
	<-done
	waitFor(t, 60*time.Second, "all flows written", func() bool { return q.Stats().Written == n })
	stop()
	if st := q.Stats(); st != (sink.Stats{Offered: n, Written: n}) || refused.Load() != 0 {
		t.Errorf("queue stats %+v, %d refused: want every flow written", st, refused.Load())
	}
	t.Logf("sink stats %+v", s.Stats())
	checkExactlyOnce(t, s, flows)
}

func TestSpoolTooSmallCountsExactlyTheMissingRows(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	const n = 12000
	flows := genFlows(13, n, time.Now().Add(-time.Minute))
	q, stop := runQueue(t, s, spoolQueueOptions(t.TempDir(), 1<<20))
	var offered, refused atomic.Int64
	for i := range 1000 {
		q.Offer(&flows[i])
	}
	waitFor(t, 10*time.Second, "first flows written", func() bool { return q.Stats().Written == 1000 })
	srv.Kill()
	<-steadyLoad(q, flows[1000:], &offered, &refused, 0)
	srv.Start()
	waitFor(t, 60*time.Second, "queue and spool drained", func() bool { st := q.Stats(); return st.Queued == 0 && st.Spooled == 0 })
	stop()
	st := q.Stats()
	rows, distinct, _ := tableChecksum(t, s)
	t.Logf("queue stats %+v (%d refused by Offer), rows %d", st, refused.Load(), rows)
	if st.Failed != 0 || st.Corrupt != 0 || st.Dropped == 0 || st.Dropped == uint64(refused.Load()) {
		t.Errorf("queue stats %+v: want drops by the spool, no failures", st)
	}
	if rows+st.Dropped != n || distinct != rows || st.Written != rows {
		t.Errorf("%d rows (%d distinct) + %d dropped != %d offered", rows, distinct, st.Dropped, n)
	}
}

func TestARestartedCollectorWritesWhatThePreviousOneSpooled(t *testing.T) {
	s1, srv := openStore(t, nil, "periscope")
	dir := t.TempDir()
	const n = 5000
	flows := genFlows(14, n, time.Now().Add(-time.Minute))
	q1, stop1 := runQueue(t, s1, spoolQueueOptions(dir, 1<<30))
	for i := range 1000 {
		q1.Offer(&flows[i])
	}
	waitFor(t, 10*time.Second, "first flows written", func() bool { return q1.Stats().Written == 1000 })
	srv.Kill()
	var offered, refused atomic.Int64
	<-steadyLoad(q1, flows[1000:], &offered, &refused, 2000)
	stop1() // the first collector exits while ClickHouse is down; its spool closes
	st1 := q1.Stats()
	s1.Close()
	t.Logf("first queue at exit: %+v", st1)
	if st1 != (sink.Stats{Offered: n, Written: 1000, Spooled: n - 1000}) || refused.Load() != 0 {
		t.Fatalf("first queue stats %+v (%d refused): want the rest spooled", st1, refused.Load())
	}

	srv.Start()
	s2, _ := openStore(t, srv, "periscope")
	q2, stop2 := runQueue(t, s2, spoolQueueOptions(dir, 1<<30))
	waitFor(t, 30*time.Second, "spool written by the next queue", func() bool { return q2.Stats().Written == n-1000 })
	stop2()
	if st := q2.Stats(); st != (sink.Stats{Recovered: n - 1000, Written: n - 1000}) {
		t.Errorf("second queue stats %+v", st)
	}
	checkExactlyOnce(t, s2, flows)
}
