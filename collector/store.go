package collector

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// DefaultRingSize is how many flows the store keeps by default.
const DefaultRingSize = 65536

// scanChunk bounds how many slots a reader examines per read-lock hold, so a
// long query never stalls the writer for long.
const scanChunk = 256

// Matcher selects flows; *filter.Filter satisfies it. A nil Matcher in a
// Query matches every flow.
type Matcher interface {
	Match(f *api.Flow) bool
}

// Query selects stored flows. Results come oldest first.
type Query struct {
	// Filter selects flows; nil matches all.
	Filter Matcher
	// Since and Until bound Flow.Time, inclusively; zero means unbounded.
	Since, Until time.Time
	// First and Last keep only the first or last N matching flows; with
	// both zero every matching flow is returned. Set at most one.
	First, Last int
}

func (q *Query) matches(f *api.Flow) bool {
	if !q.Since.IsZero() && f.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && f.Time.After(q.Until) {
		return false
	}
	return q.Filter == nil || q.Filter.Match(f)
}

// Entry is a stored flow with its sequence number; sequence numbers start at
// 1 and grow by one per flow written.
type Entry struct {
	Seq  uint64
	Flow api.Flow
}

type slot struct {
	seq  uint64 // 0 while the slot is empty
	flow api.Flow
}

// Store is a ring of the most recent flows, stored by value, with live
// subscriptions. One goroutine writes; any number read concurrently.
type Store struct {
	mu    sync.RWMutex
	slots []slot
	next  uint64 // sequence number of the next flow written

	subMu  sync.Mutex
	subs   []*subscription
	closed bool

	skipped atomic.Uint64
}

// NewStore makes a store keeping the last capacity flows (DefaultRingSize
// when capacity is not positive).
func NewStore(capacity int) *Store {
	if capacity <= 0 {
		capacity = DefaultRingSize
	}
	return &Store{slots: make([]slot, capacity), next: 1}
}

// Capacity is how many flows the store keeps.
func (s *Store) Capacity() int { return len(s.slots) }

// Write copies f into the ring and hands a copy to every subscription whose
// query it matches. It never blocks on a subscriber: one whose queue is full
// has the flow skipped and counted. Only one goroutine may call Write.
func (s *Store) Write(f *api.Flow) {
	s.mu.Lock()
	seq := s.next
	s.next++
	sl := &s.slots[seq%uint64(len(s.slots))]
	sl.seq = seq
	sl.flow = *f
	s.mu.Unlock()

	// Subscribe reads s.next while holding subMu, so every flow with a
	// sequence number at or past a subscription's start reaches it here.
	s.subMu.Lock()
	for _, sub := range s.subs {
		if !sub.query.matches(f) {
			continue
		}
		select {
		case sub.ch <- Entry{Seq: seq, Flow: *f}:
		default:
			sub.skipped.Add(1)
			s.skipped.Add(1)
		}
	}
	s.subMu.Unlock()
}

// Seen is how many flows were ever written.
func (s *Store) Seen() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.next - 1
}

// Stored is how many flows the ring holds now.
func (s *Store) Stored() int {
	seen := s.Seen()
	if seen < uint64(len(s.slots)) {
		return int(seen)
	}
	return len(s.slots)
}

// Skipped is how many flows were skipped for slow followers, in total.
func (s *Store) Skipped() uint64 { return s.skipped.Load() }

// Followers is how many follows are live.
func (s *Store) Followers() int {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return len(s.subs)
}

// Close ends every follow; later follows end at once.
func (s *Store) Close() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, sub := range s.subs {
		close(sub.ch)
	}
	s.subs = nil
}

// oldestLocked is the sequence number of the oldest flow still stored.
func (s *Store) oldestLocked() uint64 {
	if n := uint64(len(s.slots)); s.next > n {
		return s.next - n
	}
	return 1
}

// Query returns copies of the stored flows q selects, oldest first.
func (s *Store) Query(q Query) []api.Flow {
	var out []api.Flow
	s.Each(q, func(e *Entry) error {
		out = append(out, e.Flow)
		return nil
	})
	return out
}

// Each calls fn, oldest first, for every stored flow q selects, stopping at
// fn's first error. fn runs without the store's lock held and gets a copy it
// may keep only during the call.
func (s *Store) Each(q Query, fn func(*Entry) error) error {
	s.mu.RLock()
	upTo := s.next
	s.mu.RUnlock()
	return s.each(q, upTo, fn)
}

// each walks sequence numbers below upTo.
func (s *Store) each(q Query, upTo uint64, fn func(*Entry) error) error {
	seq := uint64(1)
	if q.Last > 0 {
		seq = s.lastStart(q, upTo)
	}
	batch := make([]Entry, 0, scanChunk)
	sent := 0
	for seq < upTo {
		batch = batch[:0]
		s.mu.RLock()
		if oldest := s.oldestLocked(); seq < oldest {
			seq = oldest
		}
		end := min(seq+scanChunk, upTo)
		for ; seq < end; seq++ {
			sl := &s.slots[seq%uint64(len(s.slots))]
			if sl.seq != seq || !q.matches(&sl.flow) {
				continue
			}
			batch = append(batch, Entry{Seq: seq, Flow: sl.flow})
			if q.First > 0 && sent+len(batch) >= q.First {
				break
			}
		}
		s.mu.RUnlock()
		for i := range batch {
			if err := fn(&batch[i]); err != nil {
				return err
			}
			sent++
		}
		if q.First > 0 && sent >= q.First {
			return nil
		}
	}
	return nil
}

// lastStart walks back from upTo to find the sequence number of the q.Last-th
// newest matching flow (or the oldest stored one if there are fewer).
func (s *Store) lastStart(q Query, upTo uint64) uint64 {
	found := 0
	seq := upTo
	for {
		s.mu.RLock()
		oldest := s.oldestLocked()
		if seq <= oldest {
			s.mu.RUnlock()
			return oldest
		}
		stop := oldest
		if seq-oldest > scanChunk {
			stop = seq - scanChunk
		}
		for seq > stop {
			seq--
			sl := &s.slots[seq%uint64(len(s.slots))]
			if sl.seq == seq && q.matches(&sl.flow) {
				found++
				if found == q.Last {
					s.mu.RUnlock()
					return seq
				}
			}
		}
		s.mu.RUnlock()
	}
}

// subscription is one follower's live queue.
type subscription struct {
	query   Query
	ch      chan Entry
	start   uint64 // first sequence number delivered live
	skipped atomic.Uint64
}

func (s *Store) subscribe(q Query, buffer int) *subscription {
	if buffer <= 0 {
		buffer = 1
	}
	sub := &subscription{query: q, ch: make(chan Entry, buffer)}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.RLock()
	sub.start = s.next
	s.mu.RUnlock()
	if s.closed {
		close(sub.ch)
		return sub
	}
	s.subs = append(s.subs, sub)
	return sub
}

func (s *Store) unsubscribe(sub *subscription) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			return
		}
	}
}

// FollowOptions tune a follow.
type FollowOptions struct {
	// Buffer is the live queue's length; when it is full, new flows are
	// skipped and counted rather than slowing the writer.
	Buffer int
	// Idle, when set, is called whenever the follower has caught up (after
	// the replay, and when the live queue is empty): the place to flush.
	Idle func() error
}

// DefaultFollowBuffer is a follower's default live queue length.
const DefaultFollowBuffer = 4096

// Follow calls fn for the flows q selects as they are written, until ctx is
// done, the store is closed, or fn or Idle fails. With q.Since or q.Last set
// it first replays the matching stored flows, then continues live with no gap
// and no duplicate. q.First is ignored. It returns how many flows were
// skipped because the follower was too slow.
func (s *Store) Follow(ctx context.Context, q Query, opts FollowOptions, fn func(*Entry) error) (uint64, error) {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultFollowBuffer
	}
	idle := opts.Idle
	if idle == nil {
		idle = func() error { return nil }
	}
	q.First = 0
	sub := s.subscribe(q, opts.Buffer)
	defer s.unsubscribe(sub)

	if q.Last > 0 || !q.Since.IsZero() {
		if err := s.each(q, sub.start, fn); err != nil {
			return sub.skipped.Load(), err
		}
	}
	if err := idle(); err != nil {
		return sub.skipped.Load(), err
	}
	for {
		select {
		case <-ctx.Done():
			return sub.skipped.Load(), nil
		case e, ok := <-sub.ch:
			if !ok {
				return sub.skipped.Load(), nil
			}
			if e.Seq < sub.start {
				// Written just before we subscribed, so already replayed.
				continue
			}
			if err := fn(&e); err != nil {
				return sub.skipped.Load(), err
			}
			if len(sub.ch) == 0 {
				if err := idle(); err != nil {
					return sub.skipped.Load(), err
				}
			}
		}
	}
}
