package agentevent

import (
	"context"
	"time"
)

// Query selects events; the zero Query selects every stored event.
type Query struct {
	// Since and Until bound Event.Time, inclusively; zero is unbounded.
	Since, Until time.Time
	// First and Last keep the first or last N events selected; at most one
	// is set. A follow ignores First.
	First, Last int
	// Follow goes on with new events after the stored ones.
	Follow bool
}

// Matches reports whether e is within q's time bounds.
func (q *Query) Matches(e *Event) bool {
	return (q.Since.IsZero() || !e.Time.Before(q.Since)) && (q.Until.IsZero() || !e.Time.After(q.Until))
}

// Reader reads agent events: the collector's Log, a relay's view of its
// peers. Read calls fn for every event q selects, oldest first, and with
// q.Follow goes on with new ones until ctx is done (then nil). It returns
// fn's first error. fn's event is valid only during the call.
type Reader interface {
	Read(ctx context.Context, q Query, fn func(e *Event) error) error
}
