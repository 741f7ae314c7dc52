package api

import (
	"slices"
	"testing"
)

func TestObservationsSplitARecordIntoItsTwoPoints(t *testing.T) {
	f := sampleFlows()["tcp_two_points"]
	var own, other Flow
	if !f.Observations(&own, &other) {
		t.Fatal("a record with Other is not split")
	}
	if own.Paired() || other.Paired() {
		t.Error("a split record still has an Other")
	}
	if own.Interface.Index != 7 || own.InitiatorHook != TrafficDirectionIngress || own.TrafficDirection != TrafficDirectionEgress ||
		own.Counters != f.Counters || !slices.Equal(own.EgressAllowedBy, f.EgressAllowedBy) || own.IngressAllowedBy != nil {
		t.Errorf("own point %+v, egress %v ingress %v: want the client's veth with its egress policy only",
			own.Observation(), own.EgressAllowedBy, own.IngressAllowedBy)
	}
	if other.Interface != f.Other.Interface || other.InitiatorHook != TrafficDirectionEgress || other.TrafficDirection != TrafficDirectionIngress ||
		other.Counters != f.Other.Counters || other.Verdict != f.Other.Verdict || other.EgressAllowedBy != nil ||
		!slices.Equal(other.IngressAllowedBy, f.IngressAllowedBy) {
		t.Errorf("other point %+v, egress %v ingress %v: want the server's veth with its ingress policy only",
			other.Observation(), other.EgressAllowedBy, other.IngressAllowedBy)
	}
	if own.Process != f.Process || other.DestinationProcess != f.DestinationProcess || own.IP != other.IP || own.UUID != other.UUID {
		t.Error("the connection's own fields differ between its points")
	}
	if f.Entry().Interface.Index != 7 {
		t.Errorf("entry %+v, want the client's veth (where the initiator's packets enter)", f.Entry())
	}
	single := sampleFlows()["tcp_forwarded"]
	if single.Observations(&own, &other) || single.Entry() != single.Observation() {
		t.Error("a record of one point is split, or its entry is not its own point")
	}
}

func TestEntryIsTheInitiatorsSideWhicheverPointSpeaks(t *testing.T) {
	f := *sampleFlows()["tcp_two_points"]
	var own, other Flow
	f.Observations(&own, &other)
	// The server's point dropped it: the record speaks from there.
	swapped := other
	swapped.Verdict = VerdictDropped
	swapped.Other = own.Observation()
	if e := swapped.Entry(); e.Interface.Index != 7 || e.Counters != f.Counters {
		t.Errorf("entry %+v, want the client's veth", e)
	}
}
