package api

import "testing"

func TestTracePointOfEachObservationPoint(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Flow
		want TracePoint
		ok   bool
	}{
		{"entering from a pod's veth", Flow{Interface: Interface{Index: 10}, InitiatorHook: TrafficDirectionIngress, Source: Endpoint{ID: 10}}, TraceFromEndpoint, true},
		{"leaving into a pod's veth", Flow{Interface: Interface{Index: 11}, InitiatorHook: TrafficDirectionEgress, Destination: Endpoint{ID: 11}}, TraceToEndpoint, true},
		{"entering from a host interface", Flow{Interface: Interface{Index: 2}, InitiatorHook: TrafficDirectionIngress, Destination: Endpoint{ID: 11}}, TraceFromNetwork, true},
		{"leaving through a host interface", Flow{Interface: Interface{Index: 2}, InitiatorHook: TrafficDirectionEgress, Source: Endpoint{ID: 10}}, TraceToNetwork, true},
		{"a sock record", Flow{Type: FlowTypeSock, Interface: Interface{Index: 10}, InitiatorHook: TrafficDirectionIngress}, 0, false},
		{"an L7 record", Flow{Type: FlowTypeL7, Interface: Interface{Index: 10}, InitiatorHook: TrafficDirectionIngress}, 0, false},
		{"no hook", Flow{Interface: Interface{Index: 10}}, 0, false},
	} {
		got, ok := c.f.TracePoint()
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %v (%q), %v; want %v (%q), %v", c.name, got, got, ok, c.want, c.want, c.ok)
		}
	}
	for p := TraceToEndpoint; p <= TraceToCrypto; p++ {
		if back, ok := ParseTracePoint(p.String()); !ok || back != p {
			t.Errorf("%d %q reads back as %d, %v", p, p, back, ok)
		}
	}
	if s := TracePoint(14).String(); s != "" {
		t.Errorf("point 14 is %q, want none", s)
	}
}
