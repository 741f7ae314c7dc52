// Package ring owns the collector's in-memory ring of the most recent flow
// records: one writer stores each flow by value, and any number of readers
// query it and follow it live through flowquery.Reader, which *Ring
// implements. A follower too slow for the writer has flows skipped and
// counted, never blocks the writer.
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

// DefaultFollowBuffer is a follower's default live queue length.
const DefaultFollowBuffer = 4096

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

	followBuffer int

	subMu  sync.Mutex
	subs   []*subscription
	closed bool

	skipped atomic.Uint64
}

// New makes a ring keeping the last size flows (DefaultSize when size is
// not positive) whose followers each have a live queue of followBuffer
// flows (DefaultFollowBuffer when not positive).
func New(size, followBuffer int) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	if followBuffer <= 0 {
		followBuffer = DefaultFollowBuffer
	}
	return &Ring{slots: make([]slot, size), next: 1, followBuffer: followBuffer}
}

// Capacity is how many flows the ring keeps.
func (r *Ring) Capacity() int { return len(r.slots) }

// Write copies f into the ring and hands a copy to every follower whose
// query it matches. It never blocks on a follower: one whose queue is full
// has the flow skipped and counted. Only one goroutine may call Write.
func (r *Ring) Write(f *api.Flow) {
	r.mu.Lock()
	seq := r.next
	r.next++
	sl := &r.slots[seq%uint64(len(r.slots))]
	sl.seq = seq
	sl.flow = *f
	r.mu.Unlock()

	// subscribe reads r.next while holding subMu, so every flow with a
	// sequence number at or past a subscription's start reaches it here.
	r.subMu.Lock()
	for _, sub := range r.subs {
		if !sub.query.Matches(f) {
			continue
		}
		select {
		case sub.ch <- Entry{Seq: seq, Flow: *f}:
		default:
			sub.skipped.Add(1)
			r.skipped.Add(1)
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

// Skipped is how many flows were skipped for slow followers, in total.
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
	for _, sub := range r.subs {
		close(sub.ch)
	}
	r.subs = nil
}

// oldestLocked is the sequence number of the oldest flow still stored.
func (r *Ring) oldestLocked() uint64 {
	if n := uint64(len(r.slots)); r.next > n {
		return r.next - n
	}
	return 1
}
