// Package ring owns the collector's in-memory ring of the most recent flow
// records: one writer stores each flow by value, and any number of readers
// query it and follow it live through flowquery.Reader, which *Ring
// implements. Followers read the ring at their own pace; the writer only
// wakes them, so a follower never blocks the writer and costs a bounded,
// small amount of memory (no queue of its own). One the writer laps has
// the flows it missed skipped and counted.
//
// It must not know where flows come from or where answers go (HTTP, the
// UI, Hubble's API).
package ring

import (
	"sync"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api"
)

// DefaultSize is how many flows a ring keeps by default.
const DefaultSize = 65536

// scanChunk bounds how many slots a reader examines per read-lock hold, so a
// long query never stalls the writer for long.
const scanChunk = 256

// Entry is a stored flow with its sequence number; sequence numbers start
// at 1 and grow by one per flow written (Seen is the last one).
type Entry struct {
	Seq  uint64
	Flow api.Flow
}

type slot struct {
	seq  uint64 // 0 while the slot is empty
	flow api.Flow
}

// Ring is a ring of the most recent flows, stored by value, with live
// subscriptions. One goroutine writes; any number read concurrently.
type Ring struct {
	mu    sync.RWMutex
	slots []slot
	next  uint64 // sequence number of the next flow written

	subMu  sync.Mutex
	subs   []*subscription
	closed bool
	done   chan struct{} // closed by Close: every follow ends

	skipped atomic.Uint64
}

// New makes a ring keeping the last size flows (DefaultSize when size is
// not positive).
func New(size int) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	return &Ring{slots: make([]slot, size), next: 1, done: make(chan struct{})}
}

// Capacity is how many flows the ring keeps.
func (r *Ring) Capacity() int { return len(r.slots) }

// Write copies f into the ring and wakes every follower; it never blocks
// on one, matches nothing and allocates nothing. Only one goroutine may
// call Write.
func (r *Ring) Write(f *api.Flow) {
	r.mu.Lock()
	seq := r.next
	r.next++
	sl := &r.slots[seq%uint64(len(r.slots))]
	sl.seq = seq
	sl.flow = *f
	r.mu.Unlock()

	r.subMu.Lock()
	for _, sub := range r.subs {
		select {
		case sub.wake <- struct{}{}:
		default: // already woken: it reads up to the newest flow anyway
		}
	}
	r.subMu.Unlock()
}

// Seen is how many flows were ever written.
func (r *Ring) Seen() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.next - 1
}

// Stored is how many flows the ring holds now.
func (r *Ring) Stored() int {
	seen := r.Seen()
	if seen < uint64(len(r.slots)) {
		return int(seen)
	}
	return len(r.slots)
}

// Skipped is how many flows slow followers missed, in total.
func (r *Ring) Skipped() uint64 { return r.skipped.Load() }

// Followers is how many follows are live.
func (r *Ring) Followers() int {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	return len(r.subs)
}

// Close ends every follow; later follows end at once.
func (r *Ring) Close() {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	close(r.done)
	r.subs = nil
}

// oldestLocked is the sequence number of the oldest flow still stored.
func (r *Ring) oldestLocked() uint64 {
	if n := uint64(len(r.slots)); r.next > n {
		return r.next - n
	}
	return 1
}
