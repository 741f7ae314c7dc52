package flowquery

import (
	"context"
	"errors"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/filter"
)

// Query selects flows. The zero Query selects every flow.
type Query struct {
	// Filter selects flows; nil selects every flow.
	Filter *filter.Set
	// Since and Until bound Flow.Time, inclusively; zero is unbounded.
	Since, Until time.Time
	// First and Last keep only the first or last N matching flows (which
	// still come oldest first); with both zero every matching flow is
	// read. At most one is set; a follow ignores First.
	First, Last int
	// PerNode counts First and Last per node, as hubble-relay counts a
	// GetFlows number: the answer holds up to N flows of every node.
	// Readers of one node's flows need not look at it.
	PerNode bool
}

// Matches reports whether f is within the time bounds and passes the
// filter. It does not allocate.
func (q *Query) Matches(f *api.Flow) bool {
	if !q.Since.IsZero() && f.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && f.Time.After(q.Until) {
		return false
	}
	return q.Filter.Match(f)
}

// Reader reads flow records: the collector's ring (collector/ring), its
// ClickHouse history (collector/sink/clickhouse) and a relay's view of many
// collectors (relay) are Readers, and the HTTP API (Server), the web UI (ui)
// and Hubble's API (relay/hubble) read through this interface only.
type Reader interface {
	// Query delivers the stored flows q selects to a, oldest first, and
	// returns when they are done, ctx is done (ctx.Err()) or a function of
	// a fails (its error).
	Query(ctx context.Context, q Query, a Answer) (Outcome, error)
	// Follow first replays the stored flows q.Last or q.Since select (q.First
	// is ignored), then goes on with new matching flows as they come, with
	// no gap and no duplicate, until ctx is done or the reader closes (nil)
	// or a function of a fails (its error). A reader of history returns
	// ErrNotLive.
	Follow(ctx context.Context, q Query, a Answer) (Outcome, error)
}

// ErrNotLive is what a reader of history answers a follow with.
var ErrNotLive = errors.New("history is not live: it cannot be followed")

// Answer is where a Reader delivers one answer. Only Flow is required. A
// reader calls the functions from one goroutine at a time.
type Answer struct {
	// Started, when set, is called once as the answer begins, before any
	// other function, with the nodes that could not be reached then (none
	// for a reader of one node). A reader that fails to begin returns its
	// error without calling it (the HTTP API answers 502); after it, only
	// ctx and the Answer's own errors end an answer.
	Started func(unavailable []string) error
	// Flow is called with each flow, valid only during the call.
	Flow func(f *api.Flow) error
	// Line, when set, is called instead of Flow by a reader that holds flows
	// already encoded (a relay holds its peers' lines): the flow in
	// api.AppendJSON's form without a newline, valid only during the call.
	// It spares decoding and encoding each flow again.
	Line func(line []byte) error
	// Idle, when set, is called whenever a follow has caught up (after its
	// replay, and whenever no new flow waits): the place to flush.
	Idle func() error
}

// Begin calls Started, if set; readers call it as the answer begins.
func (a *Answer) Begin(unavailable []string) error {
	if a.Started == nil {
		return nil
	}
	return a.Started(unavailable)
}

// CaughtUp calls Idle, if set.
func (a *Answer) CaughtUp() error {
	if a.Idle == nil {
		return nil
	}
	return a.Idle()
}

// Outcome is what a Reader reports of an answer besides its flows.
type Outcome struct {
	// Unavailable are the nodes that could not be read at some point of the
	// answer: when there are any, the answer is partial.
	Unavailable []string
	// Skipped counts the new flows a follow missed because it fell behind.
	Skipped uint64
}
