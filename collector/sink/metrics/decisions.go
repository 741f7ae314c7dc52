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
// for a policy drop without attributed rules, one in the flow's direction.
// periscope_policy_verdicts_total counts these.
func PolicyDecisions(f *api.Flow, fn func(dir api.TrafficDirection, match string)) {
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
			fn(side.dir, MatchDeny)
		case len(side.allowed) > 0:
			fn(side.dir, MatchAllow)
		default:
			continue
		}
		decided = true
	}
	if decided || f.Verdict != api.VerdictDropped {
		return
	}
	switch f.DropReason {
	case api.DropReasonPolicyDenied:
		fn(f.TrafficDirection, MatchDefault)
	case api.DropReasonPolicyDeny:
		fn(f.TrafficDirection, MatchDeny)
	}
}
