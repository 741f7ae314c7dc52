package api

// Observation is one observation point of a connection on this node: the
// interface the datapath saw it at, and what it saw and decided there.
type Observation struct {
	Interface        Interface
	InitiatorHook    TrafficDirection // as Flow.InitiatorHook, at this interface
	TrafficDirection TrafficDirection // as Flow.TrafficDirection, for the endpoint behind this interface
	Verdict          Verdict
	DropReason       DropReason
	Counters         Counters
}

// Paired reports whether the record merges two observation points of its
// connection (Other is set).
func (f *Flow) Paired() bool { return f.Other.Interface.Index != 0 }

// Observation returns the record's own observation point.
func (f *Flow) Observation() Observation {
	return Observation{
		Interface: f.Interface, InitiatorHook: f.InitiatorHook, TrafficDirection: f.TrafficDirection,
		Verdict: f.Verdict, DropReason: f.DropReason, Counters: f.Counters,
	}
}

// Entry returns the observation point where the initiator's packets enter
// the node (InitiatorHook ingress): the record's own or Other. A connection
// has one whichever side decided its verdict, so counting each connection's
// traffic from its entry counts it once. Without Other it is the record's
// own.
func (f *Flow) Entry() Observation {
	if f.Paired() && f.InitiatorHook != TrafficDirectionIngress && f.Other.InitiatorHook == TrafficDirectionIngress {
		return f.Other
	}
	return f.Observation()
}

// Observations writes the record's two observation points as records of
// their own, the way Hubble reports each point a connection passes: own is
// the record at its own interface, other the record at Other's. Each keeps
// only the policy names of its own direction (the local endpoint's egress
// where the initiator's packets enter the node, its ingress where they
// leave) and has no Other. It returns false and writes nothing when the
// record is not Paired.
func (f *Flow) Observations(own, other *Flow) bool {
	if !f.Paired() {
		return false
	}
	*own = *f
	own.Other = Observation{}
	own.keepPoliciesOf(own.InitiatorHook)
	*other = *own
	other.Interface, other.InitiatorHook, other.TrafficDirection = f.Other.Interface, f.Other.InitiatorHook, f.Other.TrafficDirection
	other.Verdict, other.DropReason, other.Counters = f.Other.Verdict, f.Other.DropReason, f.Other.Counters
	other.IngressAllowedBy, other.IngressDeniedBy = f.IngressAllowedBy, f.IngressDeniedBy
	other.EgressAllowedBy, other.EgressDeniedBy = f.EgressAllowedBy, f.EgressDeniedBy
	other.keepPoliciesOf(other.InitiatorHook)
	return true
}

// keepPoliciesOf clears the policy names of the direction an observation
// point at hook does not judge: where the initiator's packets enter the
// node (ingress hook) the local endpoint's egress is judged, where they
// leave (egress hook) its ingress.
func (f *Flow) keepPoliciesOf(hook TrafficDirection) {
	switch hook {
	case TrafficDirectionIngress:
		f.IngressAllowedBy, f.IngressDeniedBy = nil, nil
	case TrafficDirectionEgress:
		f.EgressAllowedBy, f.EgressDeniedBy = nil, nil
	}
}
