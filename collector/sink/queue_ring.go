package sink

import (
	"time"

	"github.com/periscope-dev/periscope/api"
)

// minRing is the ring's smallest size (or Capacity, when less).
const minRing = 4096

// shrinkWindow is how long the ring's high-water mark is remembered: a
// ring larger than four times what it held over the last one to two
// windows shrinks to twice that once it is empty.
const shrinkWindow = 10 * time.Second

// The ring is allocated as it fills, not at Capacity: a queue holds every
// flow by value with its pointers (names, labels), and memory the garbage
// collector scans on every cycle costs CPU for every record, although a
// sink that keeps up holds one flush's worth.

// resize moves the held flows, oldest first, into a ring of size; q.mu is
// held, size is at least q.n. A batch being written keeps the old array,
// whose flows are no longer touched.
func (q *Queue) resize(size int) {
	ring := make([]api.Flow, size)
	n := copy(ring, q.ring[q.head:min(q.head+q.n, len(q.ring))])
	copy(ring[n:], q.ring[:q.n-n])
	q.ring, q.head = ring, 0
}

// shrink gives an empty ring back when it outgrew what it holds; q.mu is
// held.
func (q *Queue) shrink() {
	if now := time.Now(); now.Sub(q.window) >= shrinkWindow {
		q.peak[1], q.peak[0], q.window = q.peak[0], 0, now
	}
	held := max(q.peak[0], q.peak[1])
	if len(q.ring) > minRing && 4*held <= len(q.ring) {
		q.ring, q.head = make([]api.Flow, max(minRing, 2*held)), 0
	}
}
