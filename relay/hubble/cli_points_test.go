package hubble

import (
	"slices"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/periscope-dev/periscope/api"
)

// twoPointFlows are a connection frontend → backend the datapath saw at
// both veths and recorded as one flow: forwarded where it entered (the
// frontend's veth), dropped by the backend's ingress policy where it left
// (the backend's veth, which speaks for the record); and a connection seen
// at one veth only.
func twoPointFlows() []api.Flow {
	tcp := api.L4{Protocol: api.ProtoTCP, SourcePort: 40100, DestinationPort: 8080, TCPFlags: api.TCPFlagSYN}
	paired := api.Flow{
		Time: t0.Add(1), Type: api.FlowTypeL3L4, Event: api.EventEnd,
		IP: api.IP{Source: ipFrontend, Destination: ipBackend, Version: api.IPv4}, L4: tcp,
		Interface: api.Interface{Index: 11}, InitiatorHook: api.TrafficDirectionEgress,
		Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDeny,
		Counters:        api.Counters{PacketsForward: 3, BytesForward: 180},
		EgressAllowedBy: []api.PolicyRef{{Name: "frontend-out", Namespace: "default", Kind: "CiliumNetworkPolicy", Revision: 1}},
		IngressDeniedBy: []api.PolicyRef{{Name: "no-frontend", Namespace: "shop", Kind: "CiliumNetworkPolicy", Revision: 2}},
		Other: api.Observation{Interface: api.Interface{Index: 10}, InitiatorHook: api.TrafficDirectionIngress,
			Verdict: api.VerdictForwarded, Counters: api.Counters{PacketsForward: 3, BytesForward: 180}},
	}
	paired.UUID[15] = 1
	single := paired
	single.Time, single.L4.SourcePort, single.Other = t0.Add(2), 40101, api.Observation{}
	single.Interface, single.InitiatorHook = api.Interface{Index: 10}, api.TrafficDirectionIngress
	single.Verdict, single.DropReason, single.IngressDeniedBy = api.VerdictForwarded, api.DropReasonUnknown, nil
	single.UUID[15] = 2
	return []api.Flow{paired, single}
}

// point is what the CLI printed of one flow: where it was observed and
// what was decided there.
type point struct {
	id        int
	iface     string
	verdict   flowpb.Verdict
	direction flowpb.TrafficDirection
	denied    int // ingress_denied_by entries
	allowed   int // egress_allowed_by entries
}

// A connection seen at two veths is one flow to `hubble observe` by
// default; its points are flows of their own with a filter naming an
// interface, or from a server serving each point (the second point's UUID
// differs from the record's in its last byte's top bit), and --last and
// --first then count points.
func TestHubbleCLIObservationPoints(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", twoPointFlows())
	byDefault := serveAddr(t, NewCollectorBackend(col))
	each := serveAddrWith(t, NewCollectorBackend(col), Options{Points: ViewEachPoint})
	fe := point{id: 0x81, iface: "veth-fe", verdict: flowpb.Verdict_FORWARDED, direction: flowpb.TrafficDirection_EGRESS, allowed: 1}
	be := point{id: 1, iface: "veth-be", verdict: flowpb.Verdict_DROPPED, direction: flowpb.TrafficDirection_INGRESS, denied: 1}
	// The connection's record: the decisive point's interface and verdict,
	// the policy names of both directions.
	conn := be
	conn.allowed = 1
	single := point{id: 2, iface: "veth-fe", verdict: flowpb.Verdict_FORWARDED, direction: flowpb.TrafficDirection_EGRESS, allowed: 1}
	cases := []struct {
		name   string
		server string
		args   []string
		want   []point
	}{
		{"one flow per connection by default", byDefault, nil, []point{conn, single}},
		{"a dropped connection is one drop", byDefault, []string{"--verdict", "DROPPED"}, []point{conn}},
		{"the point at an interface", byDefault, []string{"--interface", "veth-fe"}, []point{fe, single}},
		{"the other point at its interface", byDefault, []string{"--interface", "veth-be"}, []point{be}},
		{"every point from a server serving each", each, nil, []point{be, fe, single}},
		{"each point is matched on its own", each, []string{"--verdict", "FORWARDED"}, []point{fe, single}},
		// A number counts points, as Hubble's does.
		{"the last point", each, []string{"--last", "1"}, []point{single}},
		{"the last two points", each, []string{"--last", "2"}, []point{fe, single}},
		{"the first two points", each, []string{"--first", "2"}, []point{be, fe}},
		{"the first point", each, []string{"--first", "1"}, []point{be}},
		{"the last three points", each, []string{"--last", "3"}, []point{be, fe, single}},
		{"the last point at an interface", byDefault, []string{"--interface", "veth-fe", "--last", "1"}, []point{single}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.server = c.server
			args := []string{"observe", "-o", "json"}
			if !slices.Contains(c.args, "--last") && !slices.Contains(c.args, "--first") {
				args = append(args, "--all")
			}
			var got []point
			for _, r := range parseFlowsJSON(t, h.mustRun(t, append(args, c.args...)...)) {
				f := r.GetFlow()
				got = append(got, point{id: uuidID(t, f.GetUuid()), iface: f.GetInterface().GetName(), verdict: f.GetVerdict(),
					direction: f.GetTrafficDirection(), denied: len(f.GetIngressDeniedBy()), allowed: len(f.GetEgressAllowedBy())})
			}
			if len(got) != len(c.want) {
				t.Fatalf("hubble printed %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("flow %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestParsePointView(t *testing.T) {
	for _, c := range []struct {
		in   string
		want PointView
		ok   bool
	}{{"connection", ViewConnection, true}, {"each", ViewEachPoint, true}, {"both", 0, false}, {"", 0, false}} {
		got, err := ParsePointView(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParsePointView(%q) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}
