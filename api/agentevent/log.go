package agentevent

import (
	"context"
	"sync"
	"time"
)

// DefaultCapacity is how many events a Log keeps by default.
const DefaultCapacity = 4096

// Log is a node's bounded in-memory log of agent events: it keeps the last
// Capacity events, and is the node's Appender and Reader. A follower that
// falls more than Capacity events behind misses the oldest ones.
type Log struct {
	node string

	mu     sync.Mutex
	events []Event // a ring: event seq is at events[seq%len]
	next   uint64  // sequence number of the next event
	wake   chan struct{}
}

// NewLog makes the log of node, keeping capacity events (DefaultCapacity
// when not positive).
func NewLog(node string, capacity int) *Log {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Log{node: node, events: make([]Event, capacity), wake: make(chan struct{})}
}

// Append stores e, with the time now when it has none and the log's node
// name, and wakes the followers. It never blocks on them.
func (l *Log) Append(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.NodeName = l.node
	l.mu.Lock()
	l.events[l.next%uint64(len(l.events))] = e
	l.next++
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// oldest is the sequence number of the oldest event kept; l.mu is held.
func (l *Log) oldest() uint64 {
	if n := uint64(len(l.events)); l.next > n {
		return l.next - n
	}
	return 0
}

// Read calls fn for the events q selects (see Reader).
func (l *Log) Read(ctx context.Context, q Query, fn func(e *Event) error) error {
	l.mu.Lock()
	from, upTo := l.oldest(), l.next
	var sel []Event
	for seq := from; seq < upTo; seq++ {
		if e := &l.events[seq%uint64(len(l.events))]; q.Matches(e) {
			sel = append(sel, *e)
		}
	}
	wake := l.wake
	l.mu.Unlock()
	switch {
	case q.Last > 0 && len(sel) > q.Last:
		sel = sel[len(sel)-q.Last:]
	case !q.Follow && q.First > 0 && len(sel) > q.First:
		sel = sel[:q.First]
	}
	for i := range sel {
		if err := fn(&sel[i]); err != nil {
			return err
		}
	}
	if !q.Follow {
		return nil
	}
	for cursor := upTo; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
		l.mu.Lock()
		cursor = max(cursor, l.oldest())
		sel = sel[:0]
		for ; cursor < l.next; cursor++ {
			if e := &l.events[cursor%uint64(len(l.events))]; q.Matches(e) {
				sel = append(sel, *e)
			}
		}
		wake = l.wake
		l.mu.Unlock()
		for i := range sel {
			if err := fn(&sel[i]); err != nil {
				return err
			}
		}
	}
}

var (
	_ Appender = (*Log)(nil)
	_ Reader   = (*Log)(nil)
)
