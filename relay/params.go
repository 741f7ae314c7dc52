package relay

import (
	"net/url"
	"strconv"
	"time"
)

// peerQuery is the GET /api/v1/flows query sent to every peer for req. With
// a filter matched here, the peers are asked for everything in the time
// range, and first/last is applied after matching.
func (req *request) peerQuery() url.Values {
	q := url.Values{}
	if len(req.chips) > 0 {
		q["filter"] = req.chips
	}
	if !req.q.Since.IsZero() {
		q.Set("since", req.q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !req.q.Until.IsZero() {
		q.Set("until", req.q.Until.UTC().Format(time.RFC3339Nano))
	}
	if req.follow {
		q.Set("follow", "1")
	}
	if req.source != "" {
		q.Set("source", req.source)
	}
	switch {
	case req.match == nil && req.q.Last > 0:
		q.Set("last", strconv.Itoa(req.q.Last))
	case req.match == nil && req.q.First > 0:
		q.Set("first", strconv.Itoa(req.q.First))
	case !req.follow && req.q.Since.IsZero() && req.q.Until.IsZero():
		q.Set("all", "1")
	}
	return q
}
