package ring

import (
	"context"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api/flowquery"
)

// subscription is one follower's live queue.
type subscription struct {
	query   flowquery.Query
	ch      chan Entry
	start   uint64 // first sequence number delivered live
	skipped atomic.Uint64
}

func (r *Ring) subscribe(q flowquery.Query) *subscription {
	sub := &subscription{query: q, ch: make(chan Entry, r.followBuffer)}
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.mu.RLock()
	sub.start = r.next
	r.mu.RUnlock()
	if r.closed {
		close(sub.ch)
		return sub
	}
	r.subs = append(r.subs, sub)
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
// q.First is ignored. The answer begins once the follow is subscribed. A
// follower whose live queue (the ring's follow buffer) is full has new
// flows skipped and counted in the Outcome, rather than slowing the writer.
func (r *Ring) Follow(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	q.First = 0
	sub := r.subscribe(q)
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
	for {
		select {
		case <-ctx.Done():
			return outcome(), nil
		case e, ok := <-sub.ch:
			if !ok {
				return outcome(), nil
			}
			if e.Seq < sub.start {
				// Written just before we subscribed, so already replayed.
				continue
			}
			if err := a.Flow(&e.Flow); err != nil {
				return outcome(), err
			}
			if len(sub.ch) == 0 {
				if err := a.CaughtUp(); err != nil {
					return outcome(), err
				}
			}
		}
	}
}
