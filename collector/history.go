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
// GET /api/v1/flows takes a "source" parameter: "ring" (the default) or
// "clickhouse". With source=clickhouse, follow is refused (400); without
// Options.History the answer is 400 "history is not configured (start the
// collector with --clickhouse)"; otherwise the server calls Query with the
// request's chips (already checked with Options.ParseFilter), since, until,
// first and last, and writes each flow as NDJSON. An error from Query is a
// 502 with its message.
type History interface {
	Query(ctx context.Context, q HistoryQuery) ([]api.Flow, error)
}

// HistoryFunc adapts a function to History (cmd/periscope wraps the
// ClickHouse store's Query with it, parsing the chips with filter.Parse).
type HistoryFunc func(ctx context.Context, q HistoryQuery) ([]api.Flow, error)

// Query calls f.
func (f HistoryFunc) Query(ctx context.Context, q HistoryQuery) ([]api.Flow, error) { return f(ctx, q) }
