package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
)

// TestABatchSentInBlocksMakesOnePart checks what Write's streaming relies
// on: the blocks of one INSERT are squashed by the server into one part of
// flows (and one of the rollup), so a batch costs one part creation however
// many blocks it is sent in, and every row arrives once.
func TestABatchSentInBlocksMakesOnePart(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	defer func(n int) { insertBlockRows = n }(insertBlockRows)
	insertBlockRows = 1000
	flows := genFlows(31, 5500, time.Now().Add(-time.Minute).Truncate(time.Hour)) // within one day's partition
	if err := s.Write(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, s, flows)
	// Level-0 parts are the ones inserts made, merged away or not.
	for _, table := range []string{"flows", "flows_1m"} {
		got := srv.Query("SELECT count() FROM system.parts WHERE database = 'periscope' AND table = '" + table + "' AND level = 0")
		if got != "1" {
			t.Errorf("%s: %s parts made by one Write of 6 blocks, want 1", table, got)
		}
	}
}

// TestAHungServerFailsTheWriteAndTheRetryStoresOnce: a server that stops
// answering (SIGSTOP) fails Write within the I/O timeout instead of holding
// it; once it answers again, the queue's retry of the same batch stores
// every row once.
func TestAHungServerFailsTheWriteAndTheRetryStoresOnce(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: srv.DSN("periscope"), IOTimeout: 2 * time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	flows := genFlows(47, 20000, time.Now().Add(-time.Minute).Truncate(time.Hour))

	srv.Pause()
	t.Cleanup(srv.Resume) // whatever happens below
	start := time.Now()
	err = s.Write(ctx, flows)
	took := time.Since(start)
	srv.Resume()
	if err == nil {
		t.Fatal("Write to a stopped server succeeded")
	}
	if took > 15*time.Second {
		t.Fatalf("Write to a stopped server failed only after %v (I/O timeout 2s)", took)
	}
	t.Logf("Write to a stopped server failed after %v: %v", took.Round(time.Millisecond), err)

	// The queue retries until a write succeeds; a server just resumed may
	// still miss the 2 s I/O timeout on a loaded machine, and each such
	// failure is one more retry of the same batch.
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 1; ; attempt++ {
		err := s.Write(ctx, flows)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry %d after the server came back: %v", attempt, err)
		}
		t.Logf("retry %d after the server came back failed, retrying: %v", attempt, err)
		time.Sleep(500 * time.Millisecond)
	}
	checkExactlyOnce(t, s, flows)
}
