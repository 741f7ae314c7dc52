package hubble

import (
	observerpb "github.com/cilium/cilium/api/v1/observer"

	"github.com/periscope-dev/periscope/api/flowquery"
)

// pointLimit makes the number of a request served point by point count
// points, as Hubble's does, where the query counts records (a record of two
// points is two flows): each node's first N points of its first N records,
// or its last N points of its last N records (at most 2N, held until the
// answer ends). A follow's replay is left as it is (its end is not marked:
// a relay's first Idle may come before its peers' replays), so it may
// print up to 2N flows a node.
type pointLimit struct {
	n    int
	last bool
	// count is the points of each node sent (first) or held (last).
	count map[string]int
	held  []*observerpb.GetFlowsResponse
}

// newPointLimit returns the limit of q's number, or nil when there is none
// to apply (no number, or a follow).
func newPointLimit(q *flowquery.Query, follow bool) *pointLimit {
	switch {
	case follow:
		return nil
	case q.First > 0:
		return &pointLimit{n: q.First, count: map[string]int{}}
	case q.Last > 0:
		return &pointLimit{n: q.Last, last: true, count: map[string]int{}}
	}
	return nil
}

// offer passes resp on through send (first N) or holds it (last N).
func (l *pointLimit) offer(resp *observerpb.GetFlowsResponse, send func(*observerpb.GetFlowsResponse) error) error {
	node := resp.GetNodeName()
	if l.last {
		l.count[node]++
		l.held = append(l.held, resp)
		return nil
	}
	if l.count[node] >= l.n {
		return nil
	}
	l.count[node]++
	return send(resp)
}

// flush sends, in order, each node's last N held points.
func (l *pointLimit) flush(send func(*observerpb.GetFlowsResponse) error) error {
	skip := make(map[string]int, len(l.count))
	for node, c := range l.count {
		skip[node] = max(0, c-l.n)
	}
	for _, resp := range l.held {
		node := resp.GetNodeName()
		if skip[node] > 0 {
			skip[node]--
			continue
		}
		if err := send(resp); err != nil {
			return err
		}
	}
	l.held = nil
	return nil
}
