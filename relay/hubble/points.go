package hubble

import (
	"fmt"
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/filter"
)

// PointView says what GetFlows serves of a connection the datapath saw at
// two observation points of a node (api.Flow.Other: the client's veth and
// the server's, say), which Periscope records as one flow.
type PointView uint8

const (
	// ViewConnection serves each record as one flow: a connection on one
	// node is one flow, its verdict and counts those of its decisive
	// point (the default).
	ViewConnection PointView = iota
	// ViewEachPoint serves each observation point of a record as a flow
	// of its own, with that point's interface, direction, verdict, drop
	// reason and policy names, as Cilium's Hubble reports the two points
	// of a connection between two local endpoints.
	ViewEachPoint
)

// PointViewNames are the names ParsePointView reads, by view.
var PointViewNames = map[PointView]string{ViewConnection: "connection", ViewEachPoint: "each"}

// ParsePointView reads "connection" or "each".
func ParsePointView(s string) (PointView, error) {
	for v, name := range PointViewNames {
		if s == name {
			return v, nil
		}
	}
	return 0, fmt.Errorf("observation-point view %q: want connection or each", s)
}

// String is the view's name.
func (v PointView) String() string { return PointViewNames[v] }

// viewOf is the view a GetFlows request gets: each point when the server
// serves them by default, or when one of the request's filters names an
// observation point: an interface (`hubble observe --interface lxc1`: what
// passed there, which is one point of a connection seen at two) or a trace
// observation point (`--type trace:to-endpoint`: the flows Hubble reports
// where packets reach an endpoint).
func viewOf(def PointView, lists ...[]*flowpb.FlowFilter) PointView {
	for _, l := range lists {
		for _, ff := range l {
			if len(ff.GetInterface()) > 0 || slices.ContainsFunc(ff.GetEventType(), namesTracePoint) {
				return ViewEachPoint
			}
		}
	}
	return def
}

// namesTracePoint reports whether an event type filter selects a trace
// observation point (trace with its sub-type matched).
func namesTracePoint(et *flowpb.EventTypeFilter) bool {
	return et.GetType() == filter.EventTypeTrace && et.GetMatchSubType()
}

// eachPointSet is the query filter of a request served point by point: a
// record passes when one of its points passes fs, and the points are then
// matched one by one (eachPoint). It is matched in Go, never pushed down:
// a point is not a stored row.
func eachPointSet(fs *filter.Set) *filter.Set {
	if fs.Empty() {
		return fs
	}
	var none *filter.Filter
	return filter.NewSet([]*filter.Filter{none.With(filter.Predicate{
		Name: "observation-point(" + fs.String() + ")",
		Match: func(f *api.Flow) bool {
			var own, other api.Flow
			if !f.Observations(&own, &other) {
				return fs.Match(f)
			}
			return fs.Match(&own) || fs.Match(&other)
		},
	})}, nil)
}

// eachPoint calls send with each observation point of f that fs passes
// (an empty fs passes all): f itself when it has one point.
func eachPoint(f *api.Flow, fs *filter.Set, send func(*api.Flow) error) error {
	var own, other api.Flow
	if !f.Observations(&own, &other) {
		return send(f)
	}
	if other.UUID != ([16]byte{}) {
		// Two flows, two UUIDs: the second point's differs from the
		// record's in one bit outside the version and variant.
		other.UUID[15] ^= 0x80
	}
	for _, p := range []*api.Flow{&own, &other} {
		if fs.Empty() || fs.Match(p) {
			if err := send(p); err != nil {
				return err
			}
		}
	}
	return nil
}
