package metrics

import "github.com/periscope-dev/periscope/api"

// Policy matches: which policy decided about which endpoint's connections,
// counted on flow records of kind start.

func policyMatchesDef() Def {
	return Def{
		Name: PolicyMatchesTotal, OTelName: OTelPolicyMatches, Unit: "{verdict}", Kind: KindCounter, Capped: true,
		Help: "Policy decisions on connections (flow records of kind start), once per deciding policy (namespace/name; empty for a default deny no rule names), by the endpoint the policy applies to (the destination for ingress, the source for egress, under the metrics' destination and source context), verdict, direction and match (allow, deny or default).",
		Labels: []Label{
			{Name: LabelPolicy, Key: KeyPolicy},
			{Name: LabelEndpoint, Key: KeyEndpoint},
			{Name: LabelAction, Key: KeyVerdict},
			{Name: LabelDirection, Key: KeyTrafficDirection},
			{Name: LabelMatch, Key: KeyPolicyMatch},
		},
	}
}

// policyMatchKey's strings are the flow's (shared policy names) or
// constants, so building it allocates nothing; the policy's label
// ("namespace/name") is built only for a new series.
type policyMatchKey struct {
	policy    policyName
	endpoint  endpointKey
	action    api.Verdict
	direction api.TrafficDirection
	match     string // one of Match*
}

// policyMatches counts periscope_policy_matches_total.
type policyMatches struct {
	series         *family[policyMatchKey]
	srcCtx, dstCtx []Context
	names          *identityTexts
}

func newPolicyMatches(m *Metrics) *policyMatches {
	return &policyMatches{
		series: newFamily(m, func(k policyMatchKey) []LabelValue {
			return []LabelValue{str(k.policy.label()), str(k.endpoint.label()), str(k.action.String()),
				str(k.direction.String()), str(k.match)}
		}, &m.defs.policyMatches),
		srcCtx: m.opts.SourceContext,
		dstCtx: m.opts.DestinationContext,
		names:  m.identities,
	}
}

// observe counts a new connection's policy decisions, per policy.
func (p *policyMatches) observe(f *api.Flow) {
	if f.Event != api.EventStart {
		return
	}
	policyDecisions(f, func(dir api.TrafficDirection, match string, policies []api.PolicyRef) {
		ep := endpointOf(&f.Source, p.srcCtx, p.names)
		if dir == api.TrafficDirectionIngress {
			ep = endpointOf(&f.Destination, p.dstCtx, p.names)
		}
		k := policyMatchKey{endpoint: ep, action: f.Verdict, direction: dir, match: match}
		if len(policies) == 0 {
			p.series.get(k)[0].Record(1)
			return
		}
		for _, ref := range policies {
			k.policy = policyName{namespace: ref.Namespace, name: ref.Name}
			p.series.get(k)[0].Record(1)
		}
	})
}

// policyName is a policy as the policy label names it: a revision or kind
// makes no new series.
type policyName struct{ namespace, name string }

func (p policyName) label() string {
	return api.PolicyRef{Namespace: p.namespace, Name: p.name}.Ref()
}
