package sink

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// Run writes the queued flows to the sink in batches: at once when a batch
// is full, and every FlushInterval whatever is held; spooled batches go
// first. A failed batch is tried again after a backoff. When ctx is done it
// writes what it holds (for at most DrainTimeout), spools or counts as failed
// anything left, and returns. With a spool it also syncs the journal every
// JournalSyncInterval.
func (q *Queue) Run(ctx context.Context) {
	wctx, stop := writeContext(ctx, q.opts.DrainTimeout)
	defer stop()
	if q.journal != nil && q.opts.JournalSyncInterval > 0 {
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { q.syncJournal(sctx) })
		defer wg.Wait()
		defer cancel()
	}
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

// syncJournal writes to the disk, every JournalSyncInterval until ctx is
// done, the journal's header and the records it still holds that were
// accepted before the previous tick: a flow held longer than two intervals
// is on the disk. Records the sink took meanwhile are not written at all,
// so a sink that keeps up costs a page per interval.
func (q *Queue) syncJournal(ctx context.Context) {
	t := time.NewTicker(q.opts.JournalSyncInterval)
	defer t.Stop()
	var synced, mark uint64 // logical positions: on the disk up to synced; the tail at the previous tick
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		q.mu.Lock()
		head, tail := q.journal.head, q.journal.tail
		q.mu.Unlock()
		from := max(head, synced)
		if err := q.journal.syncRange(from, mark); err != nil {
			q.opts.Logger.Warn("journal sync failed; a power loss may lose more flows", "err", err)
		} else {
			synced = max(synced, mark)
		}
		mark = tail
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
		err := q.write(wctx, batch, fromSpool)
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

// write hands the batch to the sink. With a journal it first records what
// is being written, so that after a crash the next run knows those flows
// may be stored already; an uncertain spool segment goes to the sink's
// WriteUncertain when it has one. It times the write for ObserveWrites and
// counts its failure.
func (q *Queue) write(ctx context.Context, batch []api.Flow, fromSpool bool) error {
	uncertain := false
	if q.journal != nil {
		if fromSpool {
			seg := q.spool.segs[0]
			q.journal.writingSegment(seg.seq)
			uncertain = seg.uncertain
		} else {
			q.mu.Lock()
			q.journal.writing(len(batch))
			q.mu.Unlock()
		}
	}
	began := time.Now()
	var err error
	if uw, ok := q.sink.(UncertainWriter); ok && uncertain {
		err = uw.WriteUncertain(ctx, batch)
	} else {
		err = q.sink.Write(ctx, batch)
	}
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

// advance drops the k oldest flows of the ring, and of the journal; q.mu is
// held.
func (q *Queue) advance(k int) {
	clear(q.ring[q.head : q.head+k]) // drop references to endpoint data
	q.head += k
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n -= k
	if q.journal != nil {
		q.journal.advance(k)
	}
	if q.n == 0 && q.inflight == 0 {
		q.shrink()
	}
}

func (q *Queue) popSpool() {
	q.replay, q.replayLoaded = q.replay[:0], false
	if err := q.spool.pop(); err != nil {
		// The segment may be written again by the next run.
		q.opts.Logger.Warn("spool: could not remove a written segment", "err", err)
	}
	q.syncSpoolBytes()
	if q.journal != nil {
		q.journal.writingSegment(0)
	}
}

// spill moves the ring's oldest batches to the spool: while more than half
// the ring (or of the journal) is held, or everything when all (at
// shutdown). Spooled flows are older than those left in the ring, so the
// order holds. A batch the spool cannot take is dropped and counted; at
// shutdown it is left to the journal (without one: counted as failed).
func (q *Queue) spill(all bool) int {
	if q.spool == nil {
		return 0
	}
	moved := 0
	for {
		q.mu.Lock()
		if q.n == 0 || !all && q.n <= q.opts.Capacity/2 && q.journal.used() <= 0.5 {
			q.mu.Unlock()
			return moved
		}
		k := min(q.n, q.opts.BatchSize, len(q.ring)-q.head)
		q.inflight = k
		batch := q.ring[q.head : q.head+k]
		first, uncertain := q.journal.headSeq, q.journal.headSeq < q.journal.inflightEnd
		q.mu.Unlock()

		err := q.spool.append(batch, first, uncertain, false)
		q.syncSpoolBytes()

		q.mu.Lock()
		q.inflight = 0
		switch {
		case err == nil:
			q.advance(k)
			q.spooled += k
			moved += k
		case all:
			q.mu.Unlock()
			if !errors.Is(err, errSpoolFull) {
				q.opts.Logger.Warn("spool write failed; flows left in the journal", "flows", q.Stats().Queued, "err", err)
			}
			return moved
		default:
			q.advance(k)
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
// (what the spool cannot take stays in the journal for the next run;
// without a spool it is counted as failed). An earlier failure's backoff is
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
		if left := q.Stats().Queued; left > 0 {
			q.opts.Logger.Warn("sink and spool did not take all flows before shutdown; left in the journal for the next run",
				"flows", left)
		}
		return
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
