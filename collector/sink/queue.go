package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// Queue puts one Sink behind a bounded ring of flows drained by one
// goroutine (Run), optionally backed by an on-disk spool (SpoolDir). Offer
// never waits for the sink or the disk: when the ring holds Capacity flows
// the flow is dropped and counted. The ring grows as it fills and shrinks
// back once it has emptied. Create it with NewQueue.
type Queue struct {
	sink  Sink
	opts  QueueOptions
	ready chan struct{} // a full batch is pending; capacity 1
	spool *spool        // nil without SpoolDir; owned by Run's goroutine

	mu       sync.Mutex
	ring     []api.Flow // grows with what is held, up to Capacity (grow, shrink)
	head     int        // index of the oldest held flow
	n        int        // flows held, including the batch being written
	peak     [2]int     // most flows held in this window and the one before
	window   time.Time  // when this window began
	inflight int        // flows of the batch being written (the n oldest's first part)
	spooled  int        // flows in the spool
	dropped  uint64
	written  uint64
	failed   uint64
	corrupt  uint64
	spoolSz  int64  // the spool's bytes, mirrored for Stats
	wErrors  uint64 // failed writes

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

// NewQueue returns a queue in front of s. Call Run to drain it, and Close
// once Run has returned when the queue has a spool.
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
		if q.spool, err = openSpool(o.SpoolDir, o.SpoolMaxBytes); err != nil {
			return nil, fmt.Errorf("queue for sink %s: %w", s.Name(), err)
		}
		q.spooled, q.spoolSz = q.spool.flows, q.spool.bytes
		if q.spooled > 0 {
			o.Logger.Info("spool holds flows of an earlier run; writing them first",
				"flows", q.spooled, "segments", len(q.spool.segs), "bytes", q.spool.bytes)
		}
	}
	return q, nil
}

// Close releases the spool (its files stay for the next Queue). Call it after
// Run has returned; later calls do nothing.
func (q *Queue) Close() error {
	if q.spool == nil {
		return nil
	}
	return q.spool.close()
}

// Name is the sink's name.
func (q *Queue) Name() string { return q.sink.Name() }

// Offer copies f into the queue and reports whether it was accepted. It never
// blocks on the sink: a full queue drops the flow and counts it. Safe for
// concurrent use.
func (q *Queue) Offer(f *api.Flow) bool {
	q.mu.Lock()
	if q.n == len(q.ring) {
		if len(q.ring) == q.opts.Capacity {
			q.dropped++
			q.mu.Unlock()
			return false
		}
		q.resize(min(2*len(q.ring), q.opts.Capacity))
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
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Queued: q.n, Spooled: q.spooled, Dropped: q.dropped, Written: q.written,
		Failed: q.failed, Corrupt: q.corrupt}
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

// write writes one batch to the sink, timing it for ObserveWrites and
// counting its failure.
func (q *Queue) write(ctx context.Context, batch []api.Flow) error {
	began := time.Now()
	err := q.sink.Write(ctx, batch)
	if err != nil {
		q.mu.Lock()
		q.wErrors++
		q.mu.Unlock()
	}
	if q.onWrite != nil {
		q.onWrite(time.Since(began), err)
	}
	return err
}

// syncSpoolBytes mirrors the spool's size for Stats, after the spool changed
// (on Run's goroutine, which owns the spool).
func (q *Queue) syncSpoolBytes() {
	q.mu.Lock()
	q.spoolSz = q.spool.bytes
	q.mu.Unlock()
}

// Run writes the queued flows to the sink in batches: at once when a batch
// is full, and every FlushInterval whatever is held; spooled batches go
// first. A failed batch is tried again after a backoff. When ctx is done it
// writes what it holds (for at most DrainTimeout), spools or counts as failed
// anything left, and returns.
func (q *Queue) Run(ctx context.Context) {
	wctx, stop := writeContext(ctx, q.opts.DrainTimeout)
	defer stop()
	tick := time.NewTicker(q.opts.FlushInterval)
	defer tick.Stop()
	if q.spool != nil && !q.spool.empty() {
		q.pump(ctx, wctx, false) // an earlier run's flows first
	}
	for {
		var retry <-chan time.Time
		if !q.retryAt.IsZero() {
			retry = time.After(time.Until(q.retryAt))
		}
		select {
		case <-ctx.Done():
			q.drain(wctx)
			return
		case <-q.ready:
			q.pump(ctx, wctx, true)
		case <-tick.C:
			q.pump(ctx, wctx, false)
			q.logDrops()
		case <-retry:
			q.pump(ctx, wctx, false)
		}
	}
}

// writeContext returns the context sink writes run on: ctx's values but not
// its end, so that a write in flight when ctx ends is finished rather than
// cut off. A cut write may still have landed, and writing its batch again
// would store it twice. The context ends grace after ctx does, which bounds
// the in-flight write and the final drain together.
func writeContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return wctx, func() { stopAfter(); cancel() }
}

// pump writes batches on wctx, oldest first, while ctx lasts, there are any
// (only full ones of the ring when fullOnly) and the sink takes them. After a
// failure it returns, leaving retryAt set; until then it only spools.
func (q *Queue) pump(ctx, wctx context.Context, fullOnly bool) {
	if !q.retryAt.IsZero() {
		if time.Now().Before(q.retryAt) {
			q.spill(false)
			return
		}
		fullOnly = false // the failed batch is due, whatever its size
	}
	for ctx.Err() == nil {
		batch, fromSpool := q.next(fullOnly)
		if batch == nil {
			return
		}
		err := q.write(wctx, batch)
		if err != nil && wctx.Err() != nil {
			q.release(fromSpool, len(batch), false)
			return // held: spooled or counted as failed by the drain
		}
		if err == nil {
			q.release(fromSpool, len(batch), true)
			q.attempts, q.backoff, q.retryAt = 0, q.opts.RetryBackoff, time.Time{}
			if fromSpool {
				q.spill(false) // new flows pile up while the spool is written back
			}
			continue
		}
		q.attempts++
		if q.spool == nil && q.attempts >= q.opts.MaxAttempts {
			q.opts.Logger.Warn("sink write failed; flows lost", "flows", len(batch), "attempts", q.attempts, "err", err)
			q.fail(len(batch))
			q.attempts, q.backoff, q.retryAt = 0, q.opts.RetryBackoff, time.Time{}
			continue
		}
		if q.attempts == 1 || q.attempts%10 == 0 {
			q.opts.Logger.Warn("sink write failed; will retry", "flows", len(batch), "attempt", q.attempts,
				"retry_in", q.backoff, "err", err)
		}
		q.release(fromSpool, len(batch), false)
		q.retryAt = time.Now().Add(q.backoff)
		q.backoff = min(2*q.backoff, maxRetryBackoff)
		q.spill(false)
		return
	}
}

// next returns the oldest batch: the spool's oldest segment, else the
// ring's oldest flows (nil if none, or fewer than a batch when fullOnly).
// A ring batch is a slice of the ring itself: Offer writes only beyond the
// n held flows, so its slots are not touched until release.
func (q *Queue) next(fullOnly bool) (batch []api.Flow, fromSpool bool) {
	for q.spool != nil && !q.spool.empty() {
		if q.replayLoaded {
			return q.replay, true
		}
		flows, lost, err := q.spool.readHead(q.replay)
		if err != nil {
			q.opts.Logger.Warn("spool segment unreadable; its flows are lost", "flows", lost, "err", err)
		} else if lost > 0 {
			q.opts.Logger.Warn("spool segment truncated or corrupt; flows lost", "flows", lost, "kept", len(flows))
		}
		q.mu.Lock()
		q.corrupt += uint64(lost)
		q.spooled -= lost
		q.mu.Unlock()
		if len(flows) == 0 {
			q.popSpool()
			continue
		}
		q.replay, q.replayLoaded = flows, true
		// The segment's flows now count as what could be read.
		q.spool.flows -= q.spool.segs[0].flows - len(flows)
		q.spool.segs[0].flows = len(flows)
		return q.replay, true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 || fullOnly && q.n < q.opts.BatchSize {
		return nil, false
	}
	k := min(q.n, q.opts.BatchSize, len(q.ring)-q.head)
	q.inflight = k
	return q.ring[q.head : q.head+k], false
}

// release ends a batch's write: done means it is no longer held (written,
// or counted otherwise).
func (q *Queue) release(fromSpool bool, k int, written bool) {
	if fromSpool {
		if written {
			q.popSpool()
			q.mu.Lock()
			q.written += uint64(k)
			q.spooled -= k
			q.mu.Unlock()
		}
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = 0
	if written {
		q.advance(k)
		q.written += uint64(k)
	}
}

// fail counts the oldest ring batch of k flows as failed.
func (q *Queue) fail(k int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = 0
	q.advance(k)
	q.failed += uint64(k)
}

// advance drops the k oldest flows of the ring; q.mu is held.
func (q *Queue) advance(k int) {
	clear(q.ring[q.head : q.head+k]) // drop references to endpoint data
	q.head += k
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n -= k
	if q.n == 0 && q.inflight == 0 {
		q.shrink()
	}
}

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

func (q *Queue) popSpool() {
	q.replay, q.replayLoaded = q.replay[:0], false
	if err := q.spool.pop(); err != nil {
		// The segment may be written again by the next run.
		q.opts.Logger.Warn("spool: could not remove a written segment", "err", err)
	}
	q.syncSpoolBytes()
}

// spill moves the ring's oldest batches to the spool: while more than half
// the ring is held, or everything when all (at shutdown). Spooled flows are
// older than those left in the ring, so the order holds. A batch the spool
// cannot take is dropped (at shutdown: failed) and counted.
func (q *Queue) spill(all bool) int {
	if q.spool == nil {
		return 0
	}
	moved := 0
	for {
		q.mu.Lock()
		if q.n == 0 || !all && q.n <= q.opts.Capacity/2 {
			q.mu.Unlock()
			return moved
		}
		k := min(q.n, q.opts.BatchSize, len(q.ring)-q.head)
		q.inflight = k
		batch := q.ring[q.head : q.head+k]
		q.mu.Unlock()

		err := q.spool.append(batch)
		q.syncSpoolBytes()

		q.mu.Lock()
		q.inflight = 0
		q.advance(k)
		switch {
		case err == nil:
			q.spooled += k
			moved += k
		case all:
			q.failed += uint64(k)
		default:
			q.dropped += uint64(k)
		}
		q.mu.Unlock()
		if err != nil && !errors.Is(err, errSpoolFull) {
			q.opts.Logger.Warn("spool write failed; flows lost", "flows", k, "err", err)
		}
	}
}

// drain is Run's final flush, on the write context (see writeContext): it
// writes what it can within DrainTimeout of Run's end, then spools the rest
// (without a spool: counts it as failed). An earlier failure's backoff is
// skipped.
func (q *Queue) drain(dctx context.Context) {
	q.retryAt = time.Time{}
	for dctx.Err() == nil {
		q.pump(dctx, dctx, false)
		if q.retryAt.IsZero() {
			break // nothing left, or the deadline passed mid-write
		}
		select {
		case <-dctx.Done():
		case <-time.After(time.Until(q.retryAt)):
		}
	}
	q.logDrops()
	if q.spool != nil {
		if n := q.spill(true); n > 0 {
			q.opts.Logger.Info("sink did not take all flows before shutdown; spooled for the next run",
				"flows", n, "spooled_total", q.Stats().Spooled)
		}
	}
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
		"dropped", st.Dropped-q.loggedDropped, "dropped_total", st.Dropped, "capacity", q.opts.Capacity,
		"spooled", st.Spooled)
	q.lastLog, q.loggedDropped = now, st.Dropped
}
