package clickhouse

import (
	"context"
	"testing"
	"time"
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
