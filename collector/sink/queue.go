package sink

import (
	"fmt"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// Queue puts one Sink behind a bounded ring of flows drained by one
// goroutine (Run), optionally backed by an on-disk spool and its journal
// (SpoolDir). Offer never waits for the sink or the disk: when the ring
// holds Capacity flows the flow is dropped and counted. The ring grows as it
// fills and shrinks back once it has emptied (queue_ring.go). Create it with
// NewQueue.
type Queue struct {
	sink  Sink
	opts  QueueOptions
	ready chan struct{} // a full batch is pending; capacity 1
	spool *spool        // nil without SpoolDir; owned by Run's goroutine

	mu          sync.Mutex
	journal     *journal   // nil without SpoolDir; its appends and advances under mu
	ring        []api.Flow // grows with what is held, up to Capacity (grow, shrink)
	head        int        // index of the oldest held flow
	n           int        // flows held, including the batch being written
	peak        [2]int     // most flows held in this window and the one before
	window      time.Time  // when this window began
	inflight    int        // flows of the batch being written (the n oldest's first part)
	spooled     int        // flows in the spool
	offered     uint64
	recovered   uint64
	dropped     uint64
	written     uint64
	failed      uint64
	corrupt     uint64
	unrecovered uint64
	spoolSz     int64  // the spool's bytes, mirrored for IOStats
	wErrors     uint64 // failed writes

	// onWrite, when set (ObserveWrites, before Run), hears of every write.
	onWrite func(d time.Duration, err error)

	// Owned by Run's goroutine.
	retryAt       time.Time     // when the failed batch is tried again; zero: no failure
	backoff       time.Duration // the wait after the next failure
	attempts      int           // failed attempts of the oldest batch
	replay        []api.Flow    // the spool's oldest segment, once read
	replayLoaded  bool
	lastLog       time.Time
	loggedDropped uint64
}

// NewQueue returns a queue in front of s. With a spool it first spools
// what an earlier run's journal holds. Call Run to drain it, and Close once
// Run has returned when the queue has a spool.
func NewQueue(s Sink, opts QueueOptions) (*Queue, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("queue for sink %s: %w", s.Name(), err)
	}
	o.Logger = o.Logger.With("component", "sink-queue", "sink", s.Name())
	q := &Queue{
		sink:    s,
		opts:    o,
		ready:   make(chan struct{}, 1),
		ring:    make([]api.Flow, min(o.Capacity, minRing)),
		backoff: o.RetryBackoff,
		window:  time.Now(),
	}
	if o.SpoolDir != "" {
		if err := q.openSpool(); err != nil {
			return nil, fmt.Errorf("queue for sink %s: %w", s.Name(), err)
		}
	}
	return q, nil
}

// Close releases the journal and the spool (their files stay for the next
// Queue). Call it after Run has returned; later calls do nothing.
func (q *Queue) Close() error {
	if q.spool == nil {
		return nil
	}
	q.mu.Lock()
	err := q.journal.close()
	q.mu.Unlock()
	if serr := q.spool.close(); err == nil {
		err = serr
	}
	return err
}

// Name is the sink's name.
func (q *Queue) Name() string { return q.sink.Name() }

// Offer copies f into the queue, and with a spool into its journal, and
// reports whether it was accepted. It never blocks on the sink or the
// disk: a full queue drops the flow and counts it. Safe for concurrent use.
func (q *Queue) Offer(f *api.Flow) bool {
	q.mu.Lock()
	q.offered++
	if q.n == len(q.ring) {
		if len(q.ring) == q.opts.Capacity {
			q.dropped++
			q.mu.Unlock()
			return false
		}
		q.resize(min(2*len(q.ring), q.opts.Capacity))
	}
	if q.journal != nil {
		// Full (its bytes ran out before the ring's slots), or closed.
		if q.journal.mem == nil || q.journal.append(f) != nil {
			q.dropped++
			q.mu.Unlock()
			return false
		}
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = *f
	q.n++
	q.peak[0] = max(q.peak[0], q.n)
	// Every BatchSize flows, so that Run also hears of them while a batch is
	// failing (it spools them then).
	batchReady := (q.n-q.inflight)%q.opts.BatchSize == 0
	q.mu.Unlock()
	if batchReady {
		select {
		case q.ready <- struct{}{}:
		default: // Run has a wake-up pending already
		}
	}
	return true
}

// Stats returns the queue's counts. Safe for concurrent use.
func (q *Queue) Stats() Stats {
	var dedup uint64
	if d, ok := q.sink.(Deduplicator); ok {
		dedup = d.Deduplicated()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Offered: q.offered, Recovered: q.recovered, Queued: q.n, Spooled: q.spooled,
		Dropped: q.dropped, Written: q.written, Failed: q.failed, Corrupt: q.corrupt,
		Unrecovered: q.unrecovered, Deduplicated: dedup}
}

// IOStats returns the spool's size and the failed writes. Safe for
// concurrent use.
func (q *Queue) IOStats() IOStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return IOStats{SpoolBytes: q.spoolSz, WriteErrors: q.wErrors}
}

// ObserveWrites makes the queue call fn after every Write of a batch to the
// sink, with how long it took and its error, on Run's goroutine: the
// metrics' write latency. Call it before Run.
func (q *Queue) ObserveWrites(fn func(d time.Duration, err error)) { q.onWrite = fn }

// syncSpoolBytes mirrors the spool's size for IOStats, after the spool
// changed (on Run's goroutine, which owns the spool).
func (q *Queue) syncSpoolBytes() {
	q.mu.Lock()
	q.spoolSz = q.spool.bytes
	q.mu.Unlock()
}
