package policy

import "github.com/periscope-dev/periscope/enforcer/dnsmatch"

// DNSDecision is the DNS proxy's reference decision on a query.
type DNSDecision struct {
	// Redirected: the endpoint's queries on this protocol and port go
	// through the DNS proxy (an egress allow selecting the endpoint has
	// rules.dns there). Otherwise the proxy never sees them and only L3/L4
	// policy judges them; Allowed is then true.
	Redirected bool
	// Allowed: the query passes.
	Allowed bool
	// Policies are, when allowed, every policy with an allow that lets the
	// name pass (by rules.dns, or with no DNS rule on the port); when
	// denied, every policy with an allow that applies to the server and
	// port but selects no rule for the name, or, when none applies, every
	// policy with rules.dns for the endpoint. Sorted (ID.Less).
	Policies []ID
}

// EvaluateDNS is the reference decision of the DNS proxy on a query of
// the local endpoint to server (its identity, labels, address and names,
// as for Evaluate) over proto (UDP or TCP) and port, for name (any case,
// with or without the final dot), with Cilium's L7 semantics: the allow
// rules that select the endpoint, match the server and cover the port
// apply; the query passes when one of them has no rules.dns there or one of
// its rules.dns selects the name. A query no allow applies to passes only
// when L3/L4 policy forwards it (the endpoint is not in egress default
// deny); the proxy sees only queries L3/L4 policy forwarded. It is
// deliberately plain: the compiled tables are tested against it.
func EvaluateDNS(policies []*Policy, local Endpoint, server Peer, proto uint8, port uint16, name string) DNSDecision {
	labels := local.labels()
	var d DNSDecision
	allow, applied, withDNS := map[ID]bool{}, map[ID]bool{}, map[ID]bool{}
	for _, pol := range policies {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.Selects(labels) {
				continue
			}
			for j := range r.Egress.Allow {
				pr := &r.Egress.Allow[j]
				if pr.HasDNS() {
					withDNS[pol.ID()] = true
					for _, pt := range pr.DNSPorts() {
						if pt.Proto == proto && pt.Lo <= port && port <= pt.Hi {
							d.Redirected = true
						}
					}
				}
				if !pr.Matches(server, proto, port) {
					continue
				}
				names, restricted := pr.DNSFor(proto, port)
				switch {
				case !restricted || selectsQuery(names, name):
					allow[pol.ID()] = true
				default:
					applied[pol.ID()] = true
				}
			}
		}
	}
	switch {
	case !d.Redirected:
		d.Allowed = true
	case len(allow) > 0:
		d.Allowed, d.Policies = true, sortedKeys(allow)
	case len(applied) > 0:
		d.Policies = sortedKeys(applied)
	default:
		l4 := Evaluate(policies, local, server, Egress, proto, port, 0)
		d.Allowed = l4.Verdict.Forwarded()
		if !d.Allowed {
			d.Policies = sortedKeys(withDNS)
		}
	}
	return d
}

// selectsQuery reports whether a rules.dns list selects a queried name: a
// pattern of stars alone selects every name there (Cilium's proxy
// short-circuits it), the others as toFQDNs selectors do.
func selectsQuery(names []*dnsmatch.Matcher, name string) bool {
	for _, m := range names {
		if m.MatchAll() || m.Match(name) {
			return true
		}
	}
	return false
}
