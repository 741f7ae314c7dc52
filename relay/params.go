package relay

import (
	"net/url"
	"strconv"
	"time"

	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// ParseRequest reads the query parameters of GET /api/v1/flows exactly as a
// collector does (package flowquery), and checks the filter chips with
// filter.Parse. Durations in since and until are taken before now, so every
// peer is asked for the same instants.
func ParseRequest(v url.Values, now time.Time) (Request, error) {
	p, err := flowquery.Parse(v, now)
	if err != nil {
		return Request{}, err
	}
	if len(p.Chips) > 0 {
		if _, err := filter.Parse(p.Chips); err != nil {
			return Request{}, &flowquery.BadParam{Param: "filter", Problem: err.Error()}
		}
	}
	req := Request{
		Chips: p.Chips, Since: p.Since, Until: p.Until,
		First: p.First, Last: p.Last, Follow: p.Follow,
	}
	if p.Source != flowquery.SourceRing {
		req.Source = p.Source
	}
	return req, nil
}

// peerQuery is the query sent to every peer for req. With a local matcher
// the peers are asked for everything in the time range and first/last is
// applied after matching, across peers.
func (req *Request) peerQuery() url.Values {
	q := url.Values{}
	if len(req.Chips) > 0 {
		q["filter"] = req.Chips
	}
	if !req.Since.IsZero() {
		q.Set("since", req.Since.UTC().Format(time.RFC3339Nano))
	}
	if !req.Until.IsZero() {
		q.Set("until", req.Until.UTC().Format(time.RFC3339Nano))
	}
	if req.Follow {
		q.Set("follow", "1")
	}
	if req.Source != "" {
		q.Set("source", req.Source)
	}
	switch {
	case req.Match == nil && req.Last > 0:
		q.Set("last", strconv.Itoa(req.Last))
	case req.Match == nil && req.First > 0:
		q.Set("first", strconv.Itoa(req.First))
	case !req.Follow && req.Since.IsZero() && req.Until.IsZero():
		q.Set("all", "1")
	}
	return q
}
