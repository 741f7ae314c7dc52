package ring

import (
	"context"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// Query delivers the stored flows q selects to a, oldest first (see
// flowquery.Reader). Flows written meanwhile are not part of the answer.
// The functions of a run without the ring's lock held. q.PerNode changes
// nothing: a ring holds one node's flows.
func (r *Ring) Query(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	r.mu.RLock()
	upTo := r.next
	r.mu.RUnlock()
	if err := a.Begin(nil); err != nil {
		return flowquery.Outcome{}, err
	}
	return flowquery.Outcome{}, r.each(ctx, &q, upTo, flowOf(a.Flow))
}

// Each calls fn, oldest first, for every stored flow q selects, with its
// sequence number, for a caller that marks a position with Seen; it stops
// at fn's first error. fn runs without the ring's lock held and gets a copy
// it may keep only during the call.
func (r *Ring) Each(q flowquery.Query, fn func(*Entry) error) error {
	r.mu.RLock()
	upTo := r.next
	r.mu.RUnlock()
	return r.each(context.Background(), &q, upTo, fn)
}

// flowOf adapts a function of flows to each.
func flowOf(fn func(*api.Flow) error) func(*Entry) error {
	return func(e *Entry) error { return fn(&e.Flow) }
}

// each calls fn, oldest first, for the stored flows q selects with sequence
// numbers below upTo, stopping at fn's first error or when ctx is done.
func (r *Ring) each(ctx context.Context, q *flowquery.Query, upTo uint64, fn func(*Entry) error) error {
	seq := uint64(1)
	if q.Last > 0 {
		seq = r.lastStart(q, upTo)
	}
	batch := make([]Entry, 0, scanChunk)
	sent := 0
	for seq < upTo {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, _, seq = r.copyFrom(seq, min(seq+scanChunk, upTo), batch[:0])
		for i := range batch {
			if !q.Matches(&batch[i].Flow) {
				continue
			}
			if err := fn(&batch[i]); err != nil {
				return err
			}
			if sent++; q.First > 0 && sent >= q.First {
				return nil
			}
		}
	}
	return nil
}

// copyFrom appends to batch copies of the stored flows with sequence
// numbers from seq up to end (both moved into what the ring holds: seq up
// to the oldest, end down to the next to be written), and returns the
// range it copied, [from, to). Matching happens after, without the lock: a
// filter's Predicate (a CEL expression) may take its time without holding
// up the writer.
func (r *Ring) copyFrom(seq, end uint64, batch []Entry) (out []Entry, from, to uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	from, to = max(seq, r.oldestLocked()), min(end, r.next)
	for seq := from; seq < to; seq++ {
		if sl := &r.slots[seq%uint64(len(r.slots))]; sl.seq == seq {
			batch = append(batch, Entry{Seq: seq, Flow: sl.flow})
		}
	}
	return batch, from, max(from, to)
}

// lastStart walks back from upTo to find the sequence number of the q.Last-th
// newest matching flow (or the oldest stored one if there are fewer).
func (r *Ring) lastStart(q *flowquery.Query, upTo uint64) uint64 {
	found := 0
	batch := make([]Entry, 0, scanChunk)
	for end := upTo; ; {
		r.mu.RLock()
		oldest := r.oldestLocked()
		r.mu.RUnlock()
		if end <= oldest {
			return oldest
		}
		start := oldest
		if end-oldest > scanChunk {
			start = end - scanChunk
		}
		batch, _, _ = r.copyFrom(start, end, batch[:0])
		for i := len(batch) - 1; i >= 0; i-- {
			if q.Matches(&batch[i].Flow) {
				if found++; found == q.Last {
					return batch[i].Seq
				}
			}
		}
		end = start
	}
}
