package sink

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// Queue puts one Sink behind a bounded ring of flows drained by one
// goroutine (Run). Offer never waits for the sink: when the ring is full the
// flow is dropped and counted. Create it with NewQueue.
type Queue struct {
	sink  Sink
	opts  QueueOptions
	ready chan struct{} // a full batch is pending; capacity 1

	mu       sync.Mutex
	ring     []api.Flow
	head     int // index of the oldest held flow
	n        int // flows held, including the batch being written
	inflight int // flows of the batch being written (the n oldest's first part)
	dropped  uint64
	written  uint64
	failed   uint64

	// Owned by Run's goroutine.
	lastLog       time.Time
	loggedDropped uint64
}

// NewQueue returns a queue in front of s. Call Run to drain it.
func NewQueue(s Sink, opts QueueOptions) (*Queue, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("queue for sink %s: %w", s.Name(), err)
	}
	o.Logger = o.Logger.With("component", "sink-queue", "sink", s.Name())
	return &Queue{
		sink:  s,
		opts:  o,
		ready: make(chan struct{}, 1),
		ring:  make([]api.Flow, o.Capacity),
	}, nil
}

// Name is the sink's name.
func (q *Queue) Name() string { return q.sink.Name() }

// Offer copies f into the queue and reports whether it was accepted. It never
// blocks on the sink: a full queue drops the flow and counts it. Safe for
// concurrent use.
func (q *Queue) Offer(f *api.Flow) bool {
	q.mu.Lock()
	if q.n == len(q.ring) {
		q.dropped++
		q.mu.Unlock()
		return false
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = *f
	q.n++
	batchReady := q.n-q.inflight == q.opts.BatchSize
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
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Queued: q.n, Dropped: q.dropped, Written: q.written, Failed: q.failed}
}

// Run writes the queued flows to the sink in batches: at once when a batch
// is full, and every FlushInterval whatever is held. When ctx is done it
// writes what it holds (for at most DrainTimeout), counts anything left as
// failed, and returns.
func (q *Queue) Run(ctx context.Context) {
	tick := time.NewTicker(q.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			q.drain(ctx)
			return
		case <-q.ready:
			q.flush(ctx, true)
		case <-tick.C:
			q.flush(ctx, false)
			q.logDrops()
		}
	}
}

// drain is Run's final flush, on a context of its own since ctx is done.
func (q *Queue) drain(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.opts.DrainTimeout)
	defer cancel()
	q.flush(dctx, false)
	q.logDrops()
	q.mu.Lock()
	left := q.n
	clear(q.ring)
	q.failed += uint64(left)
	q.head, q.n = 0, 0
	q.mu.Unlock()
	if left > 0 {
		q.opts.Logger.Warn("sink did not take all flows before shutdown; counted as failed",
			"flows", left, "drain_timeout", q.opts.DrainTimeout)
	}
}

// flush writes batches while flows are held (only full batches when
// fullOnly). A batch whose Write was cut short by ctx stays held so that the
// final drain can write it again.
func (q *Queue) flush(ctx context.Context, fullOnly bool) {
	for ctx.Err() == nil {
		q.mu.Lock()
		if q.n == 0 || fullOnly && q.n < q.opts.BatchSize {
			q.mu.Unlock()
			return
		}
		// The batch is a slice of the ring itself: Offer writes only beyond
		// the n held flows, so the batch's slots are not touched meanwhile.
		k := min(q.n, q.opts.BatchSize, len(q.ring)-q.head)
		batch := q.ring[q.head : q.head+k]
		q.inflight = k
		q.mu.Unlock()

		err := q.write(ctx, batch)

		q.mu.Lock()
		q.inflight = 0
		if err != nil && ctx.Err() != nil {
			q.mu.Unlock()
			return
		}
		clear(batch) // drop references to endpoint data
		q.head += k
		if q.head == len(q.ring) {
			q.head = 0
		}
		q.n -= k
		if err != nil {
			q.failed += uint64(k)
		} else {
			q.written += uint64(k)
		}
		q.mu.Unlock()
		if err != nil {
			q.opts.Logger.Warn("sink write failed; flows lost", "flows", k, "err", err)
		}
	}
}

// write makes up to MaxAttempts attempts to write batch, backing off
// between them.
func (q *Queue) write(ctx context.Context, batch []api.Flow) error {
	backoff := q.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := q.sink.Write(ctx, batch)
		if err == nil {
			return nil
		}
		if attempt >= q.opts.MaxAttempts || ctx.Err() != nil {
			return fmt.Errorf("write %d flows to sink %s (attempt %d): %w", len(batch), q.sink.Name(), attempt, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write %d flows to sink %s: %w (after %w)", len(batch), q.sink.Name(), ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

// logDrops logs new drops, at most once per LogInterval.
func (q *Queue) logDrops() {
	now := time.Now()
	if now.Sub(q.lastLog) < q.opts.LogInterval {
		return
	}
	st := q.Stats()
	if st.Dropped == q.loggedDropped {
		return
	}
	q.opts.Logger.Warn("sink queue full; flows dropped",
		"dropped", st.Dropped-q.loggedDropped, "dropped_total", st.Dropped, "capacity", q.opts.Capacity)
	q.lastLog, q.loggedDropped = now, st.Dropped
}
