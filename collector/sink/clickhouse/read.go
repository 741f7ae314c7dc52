package clickhouse

import (
	"context"
	"fmt"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// Query delivers the stored flows q selects to a, oldest first, as they
// are read: Store is the flowquery.Reader of history (GET
// /api/v1/flows?source=clickhouse, the web UI's time ranges). At most
// Options.MaxQueries run at once; one more is refused with a
// flowquery.BusyError before it begins. The answer begins once the server
// has accepted the query, so a failing server fails it before it begins;
// the rows then go to a one by one, never gathered (see reads.go for the
// connections, limits and cancellation).
//
// The filter is translated to SQL (where.go) with every value bound as a
// parameter; a term SQL cannot express exactly (a node glob, a
// filter.Predicate) is left out of the SQL, which then selects a superset,
// and q.Filter.Match decides every row read in any case. First and Last
// keep their meaning: with an exact clause the server applies them (Last
// as the newest N, delivered oldest first); otherwise First stops reading
// at the Nth match, and Last first walks back from the newest row to its
// Nth match, then reads forward from there. q.PerNode is not looked at.
func (s *Store) Query(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	if q.First > 0 && q.Last > 0 {
		return flowquery.Outcome{}, fmt.Errorf("clickhouse: query: set First or Last, not both")
	}
	if q.First < 0 || q.Last < 0 {
		return flowquery.Outcome{}, fmt.Errorf("clickhouse: query: negative First or Last")
	}
	release, err := s.queries.Acquire()
	if err != nil {
		return flowquery.Outcome{}, err
	}
	defer release()
	// The server stops a query after QueryTimeout of its own work; this
	// bounds the whole answer, transfer included, the same.
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()

	where, args, exact := whereClause(q)
	cols := columnList()
	from := fmt.Sprintf("`%s`.%s", s.db, tableFlows)
	const asc, desc = "time ASC, time_ns ASC, uuid ASC", "time DESC, time_ns DESC, uuid DESC"
	// The answer begins once the first query is under way.
	begun := false
	begin := func() error {
		if begun {
			return nil
		}
		begun = true
		return a.Begin(nil)
	}
	// every delivers the rows q.Filter matches (the safety net when the
	// SQL is exact: it never decides alone), up to n of them when n > 0.
	every := func(n int) func(*api.Flow) (bool, error) {
		sent := 0
		return func(f *api.Flow) (bool, error) {
			if !q.Filter.Match(f) {
				return true, nil
			}
			sent++
			return n == 0 || sent < n, a.Flow(f)
		}
	}

	switch {
	case exact && q.Last > 0:
		sql := fmt.Sprintf("SELECT %s FROM (SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT ?) ORDER BY %s", cols, cols, from, where, desc, asc)
		err = s.read(ctx, sql, append(args, q.Last), begin, every(0))
	case exact && q.First > 0:
		sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT ?", cols, from, where, asc)
		err = s.read(ctx, sql, append(args, q.First), begin, every(0))
	case q.Last > 0:
		// Part of the filter runs in Go: walk back to the Last-th newest
		// match, whose key bounds the forward read.
		var bound *api.Flow
		n := 0
		sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", cols, from, where, desc)
		err = s.read(ctx, sql, args, begin, func(f *api.Flow) (bool, error) {
			if q.Filter.Match(f) {
				if n++; n == q.Last {
					bound = f
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			break
		}
		if bound != nil {
			sec, ns := splitTime(bound.Time)
			where += " AND (time > toDateTime(?) OR time = toDateTime(?) AND (time_ns > ? OR time_ns = ? AND uuid >= ?))"
			args = append(args, sec, sec, ns, ns, string(bound.UUID[:]))
		}
		sql = fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", cols, from, where, asc)
		err = s.read(ctx, sql, args, begin, every(0))
	default:
		// All, or the first q.First (0: all) that match, SQL exact or not.
		sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", cols, from, where, asc)
		err = s.read(ctx, sql, args, begin, every(q.First))
	}
	return flowquery.Outcome{}, err
}

// Follow answers flowquery.ErrNotLive: history is not live.
func (s *Store) Follow(context.Context, flowquery.Query, flowquery.Answer) (flowquery.Outcome, error) {
	return flowquery.Outcome{}, flowquery.ErrNotLive
}

var _ flowquery.Reader = (*Store)(nil)
