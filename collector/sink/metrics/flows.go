package metrics

import "github.com/periscope-dev/periscope/api"

// The connection metrics, counted on flow records of kind start.

func flowsDef() Def {
	return Def{
		Name: FlowsTotal, OTelName: OTelFlows, Unit: "{flow}", Kind: KindCounter, Capped: true,
		Help: "Connections seen: flow records of kind start (one per connection: a connection seen at two interfaces of the node is one record), by verdict, traffic direction, IP protocol, IP version and flow type.",
		Labels: []Label{
			{Name: LabelVerdict, Key: KeyVerdict},
			{Name: LabelDirection, Key: KeyTrafficDirection},
			{Name: LabelProtocol, Key: keyTransport},
			{Name: LabelIPVersion, Key: keyNetworkType},
			{Name: LabelType, Key: KeyFlowType},
		},
	}
}

func dropsDef() Def {
	return Def{
		Name: DropsTotal, OTelName: OTelDrops, Unit: "{flow}", Kind: KindCounter, Capped: true,
		Help: "Dropped connections: flow records of kind start with verdict DROPPED, by drop reason and traffic direction.",
		Labels: []Label{
			{Name: LabelReason, Key: KeyDropReason},
			{Name: LabelDirection, Key: KeyTrafficDirection},
		},
	}
}

func policyVerdictsDef() Def {
	return Def{
		Name: PolicyVerdictsTotal, OTelName: OTelPolicyVerdicts, Unit: "{verdict}", Kind: KindCounter, Capped: true,
		Help: "Policy decisions on connections (flow records of kind start), by verdict, the direction of the deciding policy, and match: allow (an allow rule), deny (a deny rule) or default (no rule allowed it).",
		Labels: []Label{
			{Name: LabelAction, Key: KeyVerdict},
			{Name: LabelDirection, Key: KeyTrafficDirection},
			{Name: LabelMatch, Key: KeyPolicyMatch},
		},
	}
}

type flowKey struct {
	verdict   api.Verdict
	direction api.TrafficDirection
	protocol  uint8
	ipVersion api.IPVersion
	typ       api.FlowType
}

type dropKey struct {
	reason    api.DropReason
	direction api.TrafficDirection
}

type policyKey struct {
	action    api.Verdict
	direction api.TrafficDirection
	match     string // one of Match*
}

// connections counts connections, drops and policy verdicts.
type connections struct {
	flows  *family[flowKey]
	drops  *family[dropKey]
	policy *family[policyKey]
}

func newConnections(m *Metrics) *connections {
	return &connections{
		flows: newFamily(m, func(k flowKey) []LabelValue {
			return []LabelValue{str(k.verdict.String()), str(k.direction.String()),
				protocolValue(k.protocol), ipVersionValue(k.ipVersion), str(k.typ.String())}
		}, &m.defs.flows),
		drops: newFamily(m, func(k dropKey) []LabelValue {
			return []LabelValue{str(k.reason.String()), str(k.direction.String())}
		}, &m.defs.drops),
		policy: newFamily(m, func(k policyKey) []LabelValue {
			return []LabelValue{str(k.action.String()), str(k.direction.String()), str(k.match)}
		}, &m.defs.policyVerdicts),
	}
}

// observe counts a new connection: its start record.
func (c *connections) observe(f *api.Flow) {
	if f.Event != api.EventStart {
		return
	}
	c.flows.get(flowKey{f.Verdict, f.TrafficDirection, f.L4.Protocol, f.IP.Version, f.Type})[0].Record(1)
	if f.Verdict == api.VerdictDropped {
		c.drops.get(dropKey{f.DropReason, f.TrafficDirection})[0].Record(1)
	}
	PolicyDecisions(f, func(dir api.TrafficDirection, match string) {
		c.policy.get(policyKey{f.Verdict, dir, match})[0].Record(1)
	})
}
