package clickhouse

import (
	"context"

	"github.com/periscope-dev/periscope/api/flowquery"
)

// Query delivers the stored flows q selects to a, oldest first: Store is
// the flowquery.Reader of history (GET /api/v1/flows?source=clickhouse,
// the web UI's time ranges). The answer begins once every row is read, so a
// failing server fails the answer before it begins.
func (s *Store) Query(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	flows, err := s.flows(ctx, q)
	if err != nil {
		return flowquery.Outcome{}, err
	}
	if err := a.Begin(nil); err != nil {
		return flowquery.Outcome{}, err
	}
	for i := range flows {
		if err := a.Flow(&flows[i]); err != nil {
			return flowquery.Outcome{}, err
		}
	}
	return flowquery.Outcome{}, nil
}

// Follow answers flowquery.ErrNotLive: history is not live.
func (s *Store) Follow(context.Context, flowquery.Query, flowquery.Answer) (flowquery.Outcome, error) {
	return flowquery.Outcome{}, flowquery.ErrNotLive
}

var _ flowquery.Reader = (*Store)(nil)
