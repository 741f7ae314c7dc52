package metrics

import "github.com/periscope-dev/periscope/api"

// Values of a policy decision's match, as the metrics label them.
const (
	MatchAllow   = "allow"   // an allow rule matched
	MatchDeny    = "deny"    // an explicit deny rule matched
	MatchDefault = "default" // no rule matched under default deny
)

// PolicyDecisions calls fn for each policy decision a connection's record
// carries: one per direction whose policies decided (deny before allow), or,
// for a policy drop (or audit) without attributed rules, one in the flow's
// direction. periscope_policy_verdicts_total counts these.
func PolicyDecisions(f *api.Flow, fn func(dir api.TrafficDirection, match string)) {
	policyDecisions(f, func(dir api.TrafficDirection, match string, _ []api.PolicyRef) { fn(dir, match) })
}

// policyDecisions is PolicyDecisions with the names of the deciding
// policies (none for a drop without attributed rules).
func policyDecisions(f *api.Flow, fn func(dir api.TrafficDirection, match string, policies []api.PolicyRef)) {
	decided := false
	for _, side := range [...]struct {
		dir             api.TrafficDirection
		allowed, denied []api.PolicyRef
	}{
		{api.TrafficDirectionIngress, f.IngressAllowedBy, f.IngressDeniedBy},
		{api.TrafficDirectionEgress, f.EgressAllowedBy, f.EgressDeniedBy},
	} {
		switch {
		case len(side.denied) > 0:
			fn(side.dir, MatchDeny, side.denied)
		case len(side.allowed) > 0:
			fn(side.dir, MatchAllow, side.allowed)
		default:
			continue
		}
		decided = true
	}
	// An audited connection carries the drop reason it was spared.
	if decided || f.Verdict != api.VerdictDropped && f.Verdict != api.VerdictAudit {
		return
	}
	switch f.DropReason {
	case api.DropReasonPolicyDenied:
		fn(f.TrafficDirection, MatchDefault, nil)
	case api.DropReasonPolicyDeny:
		fn(f.TrafficDirection, MatchDeny, nil)
	}
}
