package clickhouse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/filter"
)

// history fills s with n flows from an hour before now (written once, then
// copied on the server doubling times: a table worth reading hard).
func history(t *testing.T, s *Store, srv *chtest.Server, n, doubling int) (since, until time.Time) {
	t.Helper()
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	if err := s.Write(context.Background(), genFlows(3, n, base)); err != nil {
		t.Fatal(err)
	}
	for range doubling {
		srv.Query("INSERT INTO periscope.flows SELECT * FROM periscope.flows")
	}
	return base.Add(-time.Minute), base.Add(time.Hour)
}

// runningReads counts the history reads the server is running.
func runningReads(t *testing.T, s *Store) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(),
		"SELECT count() FROM system.processes WHERE startsWith(query_id, ?)", readQueryIDPrefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Eight clients reading history as hard as they can, at once and all
// along, do not stop ingestion: reads have their own connections (the
// sink's pool never has more than its writer's in use) and a bound (the
// ones beyond it are refused), so the sink's queue, sized for a few
// seconds of stall, drops nothing.
func TestHeavyReadsDoNotStallIngestion(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	since, until := history(t, s, srv, 100000, 1)

	q, stop := runQueue(t, s, sink.QueueOptions{Capacity: 40000, BatchSize: 4096, FlushInterval: 100 * time.Millisecond,
		MaxAttempts: 100, RetryBackoff: 50 * time.Millisecond})
	defer stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reads, busy, rows atomic.Uint64
	var wg sync.WaitGroup
	var sinkConns, readConns atomic.Int64 // the most in use at once
	wg.Go(func() {
		for ctx.Err() == nil {
			if n := int64(s.conn.Stats().Open); n > sinkConns.Load() {
				sinkConns.Store(n)
			}
			if n := int64(s.reads.Stats().Open); n > readConns.Load() {
				readConns.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := s.Query(ctx, flowquery.Query{Since: since, Until: until},
					flowquery.Answer{Flow: func(*api.Flow) error { rows.Add(1); return nil }})
				switch {
				case errors.Is(err, flowquery.ErrBusy):
					busy.Add(1)
					time.Sleep(20 * time.Millisecond)
				case err != nil && ctx.Err() == nil:
					t.Errorf("history read: %v", err)
					return
				case err == nil:
					reads.Add(1)
				}
			}
		})
	}

	// 5,000 flows/s for 8 s, while they read.
	live := genFlows(99, 40000, time.Now())
	tick := time.NewTicker(100 * time.Millisecond)
	for i := 0; i < len(live); i += 500 {
		<-tick.C
		for j := i; j < i+500; j++ {
			q.Offer(&live[j])
		}
	}
	tick.Stop()
	waitFor(t, 120*time.Second, "the queue to drain", func() bool { return q.Stats().Queued == 0 })
	// On a loaded machine one history read of 100,000 rows can outlast the
	// ingestion: keep reading until one has finished and one was refused.
	waitFor(t, 120*time.Second, "a history read to finish and one to be refused", func() bool {
		return reads.Load() > 0 && busy.Load() > 0
	})
	cancel()
	wg.Wait()
	st := q.Stats()
	t.Logf("%d history reads done (%d rows) and %d refused at the bound while ingesting; queue: %+v", reads.Load(), rows.Load(), busy.Load(), st)
	if rows.Load() < 100000 || busy.Load() == 0 {
		t.Errorf("%d rows read, %d reads refused: the readers did not load the store as meant", rows.Load(), busy.Load())
	}
	if sinkConns.Load() > 1 || readConns.Load() > DefaultMaxQueries+2 {
		t.Errorf("at most %d of the sink's connections and %d of the reads' were in use at once; want 1 (the writer's) and %d",
			sinkConns.Load(), readConns.Load(), DefaultMaxQueries+2)
	}
	if st.Dropped != 0 || st.Written != uint64(len(live)) {
		t.Errorf("ingestion dropped %d of %d flows (wrote %d) under heavy reads", st.Dropped, len(live), st.Written)
	}
}

// A client that goes mid-answer takes its query with it: the server runs
// it no more than a moment after.
func TestAGoneClientsQueryIsKilled(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	history(t, s, srv, 100000, 2)
	hs := httptest.NewServer(&flowquery.Server{Ring: s, History: s})
	defer hs.Close()

	// A node glob SQL cannot say: the newest match is looked for in Go,
	// walking back over every row.
	for _, params := range []string{"?source=clickhouse&last=10&filter=node%3Dnone*", "?source=clickhouse&all"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/api/v1/flows"+params, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		waitFor(t, 10*time.Second, "the query to run", func() bool { return runningReads(t, s) > 0 })
		cancel() // the client goes
		<-done
		gone := time.Now()
		waitFor(t, 3*time.Second, "the server to drop the gone client's query", func() bool { return runningReads(t, s) == 0 })
		t.Logf("%s: the query left the server %v after its client", params, time.Since(gone).Round(time.Millisecond))
	}
}

// A large answer goes to its client as it is read: the heap holds a few
// blocks of it, never all of it.
func TestALargeAnswerIsStreamed(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	since, until := history(t, s, srv, 100000, 1) // 200,000 rows, ~150 MB as flows
	before := liveHeap()
	var peak uint64
	n := 0
	_, err := s.Query(context.Background(), flowquery.Query{Since: since, Until: until, Filter: filter.MustParseSet("node=node-*")},
		flowquery.Answer{Flow: func(*api.Flow) error {
			if n++; n%20000 == 0 {
				peak = max(peak, liveHeap())
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	grown := int64(peak) - int64(before)
	t.Logf("%d flows read; the heap grew by %.1f MiB at most", n, float64(grown)/(1<<20))
	if n != 200000*2/3 && n < 100000 {
		t.Fatalf("read %d flows, want the two thirds of 200,000 on node-*", n)
	}
	if grown > 48<<20 {
		t.Errorf("reading %d flows grew the heap by %d bytes: the answer is held, not streamed", n, grown)
	}
}

// History queries beyond MaxQueries are refused at once (503 over HTTP),
// and a query is bounded by QueryTimeout, transfer included.
func TestHistoryQueriesAreBounded(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: srv.DSN("periscope"), Logger: quietLogger(), MaxQueries: 2, QueryTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	since, until := history(t, s, srv, 20000, 0)
	hs := httptest.NewServer(&flowquery.Server{Ring: s, History: s})
	defer hs.Close()

	// Two readers that take their time hold both places.
	hold := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			_, errs[i] = s.Query(ctx, flowquery.Query{Since: since, Until: until}, flowquery.Answer{Flow: func(*api.Flow) error {
				<-hold
				return nil
			}})
		})
	}
	waitFor(t, 10*time.Second, "two queries to run", func() bool { return s.queries.InUse() == 2 })
	resp, err := http.Get(hs.URL + "/api/v1/flows?source=clickhouse&last=5")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a third history query: %s %q, want 503 with Retry-After", resp.Status, body)
	}
	// They are slower than QueryTimeout: they fail, and leave the server.
	start := time.Now()
	go func() {
		time.Sleep(3 * time.Second)
		close(hold)
	}()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("reader %d: %v, want the deadline of QueryTimeout", i, err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("readers held past QueryTimeout ended after %v", d)
	}
	waitFor(t, 5*time.Second, "the timed-out queries to leave the server", func() bool { return runningReads(t, s) == 0 })
	if got := strconv.Itoa(s.queries.InUse()); got != "0" {
		t.Errorf("%s places still taken", got)
	}
}
