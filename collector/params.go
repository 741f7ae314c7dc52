package collector

import (
	"net/url"
	"time"

	"github.com/periscope-dev/periscope/api/flowquery"
)

// flowsRequest is a parsed GET /api/v1/flows.
type flowsRequest struct {
	query  Query
	follow bool
	// source is where the flows come from: flowquery.SourceRing or
	// flowquery.SourceClickHouse.
	source string
	// chips are the raw filter chips, for a history back end.
	chips []string
}

// parseFlowsRequest reads the query parameters of GET /api/v1/flows (see
// package flowquery) and parses the filter chips with parseFilter.
func parseFlowsRequest(v url.Values, now time.Time, parseFilter func([]string) (Matcher, error)) (*flowsRequest, error) {
	p, err := flowquery.Parse(v, now)
	if err != nil {
		return nil, err
	}
	req := &flowsRequest{
		query:  Query{Since: p.Since, Until: p.Until, First: p.First, Last: p.Last},
		follow: p.Follow,
		source: p.Source,
		chips:  p.Chips,
	}
	if len(p.Chips) > 0 {
		if parseFilter == nil {
			return nil, &flowquery.BadParam{Param: "filter", Problem: "this collector does not support filters"}
		}
		m, err := parseFilter(p.Chips)
		if err != nil {
			return nil, &flowquery.BadParam{Param: "filter", Problem: err.Error()}
		}
		req.query.Filter = m
	}
	return req, nil
}
