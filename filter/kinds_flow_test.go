package filter

import (
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// tracePointFlows: a forwarded flow at each of Periscope's trace points (a
// local endpoint's ID is its veth's index), a dropped one, a socket record.
func tracePointFlows() map[string]*api.Flow {
	at := func(ifindex uint32, hook api.TrafficDirection, srcID, dstID uint32, v api.Verdict) *api.Flow {
		return &api.Flow{Type: api.FlowTypeL3L4, Verdict: v, Interface: api.Interface{Index: ifindex}, InitiatorHook: hook,
			Source: api.Endpoint{ID: srcID}, Destination: api.Endpoint{ID: dstID}}
	}
	dropped := at(11, api.TrafficDirectionEgress, 10, 11, api.VerdictDropped)
	dropped.DropReason = api.DropReasonPolicyDenied
	l7Denied := &api.Flow{Type: api.FlowTypeL7, Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDenied,
		L7: &api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: "GET", URL: "http://b/x"}}}
	return map[string]*api.Flow{
		"l7-denied":     l7Denied,
		"from-endpoint": at(10, api.TrafficDirectionIngress, 10, 11, api.VerdictForwarded),
		"to-endpoint":   at(11, api.TrafficDirectionEgress, 10, 11, api.VerdictForwarded),
		"from-network":  at(2, api.TrafficDirectionIngress, 0, 12, api.VerdictForwarded),
		"to-network":    at(2, api.TrafficDirectionEgress, 12, 0, api.VerdictForwarded),
		"dropped":       dropped,
		"sock":          {Type: api.FlowTypeSock, Verdict: api.VerdictTraced},
	}
}

func TestEventTypeSubTypes(t *testing.T) {
	flows := tracePointFlows()
	for _, c := range []struct {
		chip, canonical string
		want            []string
	}{
		{"event-type=trace:to-endpoint", "event-type=trace:to-endpoint", []string{"to-endpoint"}},
		{"event-type=4:0", "event-type=trace:to-endpoint", []string{"to-endpoint"}},
		{"event-type=TRACE:From-Endpoint", "event-type=trace:from-endpoint", []string{"from-endpoint"}},
		{"event-type=trace:5", "event-type=trace:from-endpoint", []string{"from-endpoint"}},
		{"event-type=trace:from-network", "event-type=trace:from-network", []string{"from-network"}},
		{"event-type=4:11", "event-type=trace:to-network", []string{"to-network"}},
		{"event-type=trace:to-stack", "event-type=trace:to-stack", nil},
		{"event-type=trace", "event-type=trace", []string{"from-endpoint", "from-network", "sock", "to-endpoint", "to-network"}},
		{"event-type=drop:POLICY_DENIED", "event-type=drop:POLICY_DENIED", []string{"dropped"}},
		{"event-type=1:133", "event-type=drop:POLICY_DENIED", []string{"dropped"}},
		{"event-type=drop:POLICY_DENY", "event-type=drop:POLICY_DENY", nil},
		// Hubble types a request the L7 proxy denied as an L7 event (129)
		// with no drop reason: not a drop event.
		{"event-type=drop", "event-type=drop", []string{"dropped"}},
		{"event-type=l7", "event-type=l7", []string{"l7-denied"}},
		{"drop-reason=POLICY_DENIED", "drop-reason=POLICY_DENIED", []string{"dropped"}},
		{"verdict=DROPPED", "verdict=DROPPED", []string{"dropped", "l7-denied"}},
	} {
		f, err := Parse([]string{c.chip})
		if err != nil {
			t.Errorf("%s: %v", c.chip, err)
			continue
		}
		if got := f.Chips(); len(got) != 1 || got[0] != c.canonical {
			t.Errorf("%s: chips %q, want %q", c.chip, got, c.canonical)
		}
		var got []string
		for name, fl := range flows {
			if f.Match(fl) {
				got = append(got, name)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s matches %q, want %q", c.chip, got, c.want)
		}
	}
}

func TestEventTypeSubTypeErrors(t *testing.T) {
	for chip, want := range map[string]string{
		"event-type=trace:to-moon":    `event-type trace's sub-type must be a trace observation point`,
		"event-type=trace:14":         `event-type trace's sub-type must be a trace observation point`,
		"event-type=drop:TOO_LOUD":    `event-type drop's sub-type must be a drop reason`,
		"event-type=l7:1":             "event-type l7 has no sub-types in Periscope",
		"event-type=policy-verdict:2": "event-type policy-verdict has no sub-types in Periscope",
		"event-type=sideways:1":       "event-type must be drop, trace",
	} {
		_, err := Parse([]string{chip})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", chip, err, want)
		}
	}
}
