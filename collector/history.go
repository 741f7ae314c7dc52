package collector

import (
	"context"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// HistoryQuery selects flows from long-term storage; its fields mean what
// Query's do. Chips are the request's filter chips (filter.Parse syntax):
// the history back end parses and translates them itself.
type HistoryQuery struct {
	Chips        []string
	Since, Until time.Time
	First, Last  int
}

// History is long-term flow storage the HTTP API can read, such as
// ClickHouse (GET /api/v1/flows?source=clickhouse). Results come oldest
// first.
//
// Wiring (for server.go/params.go): accept a "source" parameter ("ring",
// the default, or "clickhouse"); "follow" is refused with a history source;
// with source=clickhouse and Options.History set, call
// History.Query(r.Context(), HistoryQuery{Chips: v["filter"], Since, Until,
// First, Last}) and write each flow with api.AppendJSON; without a History
// answer 400 "source clickhouse is not configured". A filter error from
// History is a 400 as well.
type History interface {
	Query(ctx context.Context, q HistoryQuery) ([]api.Flow, error)
}

// HistoryFunc adapts a function to History (cmd/periscope wraps the
// ClickHouse store's Query with it, parsing the chips with filter.Parse).
type HistoryFunc func(ctx context.Context, q HistoryQuery) ([]api.Flow, error)

// Query calls f.
func (f HistoryFunc) Query(ctx context.Context, q HistoryQuery) ([]api.Flow, error) { return f(ctx, q) }
