package ring

import (
	"context"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api/flowquery"
)

// followChunk is how many slots a follower examines per read-lock hold,
// and so the most flows it holds copies of: what a follower costs in
// memory (followChunk × a flow's ~600 bytes), whatever its client does.
const followChunk = 32

// subscription is one follower: a wake-up signal from the writer, and
// where its live part begins. The follower reads the ring itself.
type subscription struct {
	wake    chan struct{} // one pending wake-up at most
	start   uint64        // first sequence number delivered live
	skipped atomic.Uint64
}

func (r *Ring) subscribe() *subscription {
	sub := &subscription{wake: make(chan struct{}, 1)}
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.mu.RLock()
	sub.start = r.next
	r.mu.RUnlock()
	if !r.closed {
		r.subs = append(r.subs, sub)
	}
	return sub
}

func (r *Ring) unsubscribe(sub *subscription) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for i, x := range r.subs {
		if x == sub {
			r.subs = append(r.subs[:i], r.subs[i+1:]...)
			return
		}
	}
}

// Follow delivers to a the flows q selects as they are written, until ctx
// is done, the ring is closed, or a function of a fails (see
// flowquery.Reader). With q.Since or q.Last set it first replays the
// matching stored flows, then continues live with no gap and no duplicate;
// q.First is ignored. The answer begins once the follow is subscribed.
//
// A follower reads the ring at its own pace, matching in its own
// goroutine: the writer only wakes it, so a follower never slows the
// writer, and holds no queue of its own (at most followChunk flows). One
// that falls more than the ring's capacity behind has the flows written
// over before it read them skipped and counted in the Outcome (matching or
// not: they are gone).
func (r *Ring) Follow(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	q.First = 0
	sub := r.subscribe()
	defer r.unsubscribe(sub)
	outcome := func() flowquery.Outcome { return flowquery.Outcome{Skipped: sub.skipped.Load()} }

	if err := a.Begin(nil); err != nil {
		return outcome(), err
	}
	if q.Last > 0 || !q.Since.IsZero() {
		if err := r.each(ctx, &q, sub.start, flowOf(a.Flow)); err != nil {
			if ctx.Err() != nil {
				return outcome(), nil
			}
			return outcome(), err
		}
	}
	if err := a.CaughtUp(); err != nil {
		return outcome(), err
	}
	batch := make([]Entry, 0, followChunk)
	cursor := sub.start
	for {
		select {
		case <-ctx.Done():
			return outcome(), nil
		case <-r.done:
			return outcome(), nil
		case <-sub.wake:
		}
		for {
			batch, cursor = r.readFrom(&q, sub, cursor, batch[:0])
			for i := range batch {
				if err := a.Flow(&batch[i].Flow); err != nil {
					return outcome(), err
				}
			}
			if r.caughtUp(cursor) {
				break
			}
			if ctx.Err() != nil {
				return outcome(), nil
			}
		}
		if err := a.CaughtUp(); err != nil {
			return outcome(), err
		}
	}
}

// readFrom copies into batch the flows q selects among up to followChunk
// slots from cursor on, and returns the cursor past them. Flows written
// over before the follower reached them are skipped and counted. It
// matches without the ring's lock held (see copyFrom).
func (r *Ring) readFrom(q *flowquery.Query, sub *subscription, cursor uint64, batch []Entry) ([]Entry, uint64) {
	all, from, to := r.copyFrom(cursor, cursor+followChunk, batch)
	if missed := from - cursor; missed > 0 {
		sub.skipped.Add(missed)
		r.skipped.Add(missed)
	}
	kept := all[:0]
	for i := range all {
		if q.Matches(&all[i].Flow) {
			kept = append(kept, all[i])
		}
	}
	return kept, to
}

// caughtUp reports whether every flow written is before cursor.
func (r *Ring) caughtUp(cursor uint64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return cursor >= r.next
}
