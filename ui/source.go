package ui

import (
	"context"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/filter"
)

// Matcher selects flows; *filter.Filter and collector.Matcher satisfy it.
type Matcher interface {
	Match(f *api.Flow) bool
}

// Query selects stored flows for a subscription's replay (its since or last)
// or for a history request.
type Query struct {
	// Chips are the filter chips as the client sent them, for a source
	// that filters upstream (a relay passing them to collectors).
	Chips []string
	// Filter is Chips parsed; nil matches all. A source may use either.
	Filter Matcher
	// Since and Until bound Flow.Time inclusively; zero is unbounded.
	Since, Until time.Time
	// Last keeps only the newest Last matching flows when positive.
	Last int
}

// FlowSource is where the UI's flows come from: a collector's store (see
// StoreSource) or a relay's merged stream.
type FlowSource interface {
	// Follow calls fn from one goroutine for every flow produced from now
	// on, until ctx is done; it then returns nil. f is valid only during
	// the call. fn never blocks.
	Follow(ctx context.Context, fn func(f *api.Flow)) error
	// Query calls fn, oldest first, for the stored flows q selects, until
	// fn fails. f is valid only during the call.
	Query(ctx context.Context, q Query, fn func(f *api.Flow) error) error
}

// HistorySource is long-term storage (e.g. ClickHouse) the UI can query for
// time ranges older than the live ring.
type HistorySource interface {
	// History calls fn, oldest first, for the flows q selects.
	History(ctx context.Context, q Query, fn func(f *api.Flow) error) error
}

// ParseChips is filter.Parse behind the Matcher interface; the default
// Options.ParseFilter.
func ParseChips(chips []string) (Matcher, error) {
	f, err := filter.Parse(chips)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// storeSource adapts a collector's Store.
type storeSource struct {
	store  *collector.Store
	buffer int
}

// StoreSource makes a collector's store a FlowSource. The UI's hub follows
// the store once with a queue of buffer flows (collector.DefaultFollowBuffer
// when not positive); flows the hub is too slow for are skipped and counted
// by the store, as for any follower.
func StoreSource(s *collector.Store, buffer int) FlowSource {
	return &storeSource{store: s, buffer: buffer}
}

func (s *storeSource) Follow(ctx context.Context, fn func(*api.Flow)) error {
	_, err := s.store.Follow(ctx, collector.Query{}, collector.FollowOptions{Buffer: s.buffer},
		func(e *collector.Entry) error {
			fn(&e.Flow)
			return nil
		})
	return err
}

func (s *storeSource) Query(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	cq := collector.Query{Since: q.Since, Until: q.Until, Last: q.Last}
	if q.Filter != nil {
		cq.Filter = q.Filter
	}
	return s.store.Each(cq, func(e *collector.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(&e.Flow)
	})
}
