package ring

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A follower that never returns from its first flow holds at most one
// chunk of copies, whatever is written meanwhile; the writer is not held
// up, and what the follower missed is counted.
func TestFollowersThatNeverReadCostAChunkEach(t *testing.T) {
	const followers, written = 100, 50000
	r := New(written / 5)
	for i := range written / 5 {
		r.Write(flowN(i))
	}
	before := heapInUse()

	ctx, cancel := context.WithCancel(context.Background())
	stuck := make(chan struct{})
	var wg sync.WaitGroup
	var inFn sync.WaitGroup
	inFn.Add(followers)
	skipped := make([]uint64, followers)
	for i := range followers {
		wg.Go(func() {
			first := true
			oc, _ := r.Follow(ctx, Query{}, flowquery.Answer{Flow: func(*api.Flow) error {
				if first {
					first = false
					inFn.Done()
					<-stuck
				}
				return nil
			}})
			skipped[i] = oc.Skipped
		})
	}
	for r.Followers() < followers {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for i := range written {
		r.Write(flowN(i))
	}
	inFn.Wait()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("writing %d flows past stuck followers took %v", written, d)
	}
	grown := int64(heapInUse()) - int64(before)
	if per := grown / followers; per > 64<<10 {
		t.Errorf("%d stuck followers grew the heap by %d bytes, %d each; want at most 64 KiB each (one chunk of %d flows)",
			followers, grown, per, followChunk)
	}
	close(stuck)
	// Each follower goes on, finds the writer has lapped it, and counts
	// what it missed.
	missed := uint64(followers * (written - written/5 - followChunk))
	deadline := time.Now().Add(10 * time.Second)
	for r.Skipped() < missed && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	for i, n := range skipped {
		if n == 0 {
			t.Errorf("follower %d missed nothing, though the writer lapped it", i)
		}
	}
}
