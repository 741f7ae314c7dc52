package policy

// protoTCP is the only protocol L7 rules apply to.
const protoTCP = 6

// EvaluateHTTP is the reference decision for an HTTP request on a TCP
// connection in direction dir of the local endpoint with remote, to port:
//
//   - L3/L4 first (Evaluate): a connection it drops never reaches the L7
//     proxy, so its decision stands;
//   - then, when some allow that matches the connection has L7 rules on
//     the port and no allow that matches it lets every request pass (one
//     without L7 rules there), the request passes only if one of those
//     rules matches it: Allowed naming the policies whose rule matched,
//     else DeniedL7 naming the policies with rules for it;
//   - otherwise the L3/L4 decision stands.
//
// Allows of all policies union, at L7 too.
func EvaluateHTTP(policies []*Policy, local Endpoint, remote Peer, dir Direction, port uint16, req HTTPRequest) Decision {
	d := Evaluate(policies, local, remote, dir, protoTCP, port, 0)
	if !d.Verdict.Forwarded() || d.Verdict == NotSelected {
		return d
	}
	labels := local.labels()
	matched, restricting := map[ID]bool{}, map[ID]bool{}
	for _, pol := range policies {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.Selects(labels) {
				continue
			}
			for j := range r.Dir(dir).Allow {
				pr := &r.Dir(dir).Allow[j]
				if !pr.Matches(remote, protoTCP, port) {
					continue
				}
				rules, restricted := pr.L7For(protoTCP, port)
				if !restricted {
					return d // an allow without L7 rules: every request
				}
				restricting[pol.ID()] = true
				for k := range rules {
					if rules[k].Matches(req) {
						matched[pol.ID()] = true
					}
				}
			}
		}
	}
	switch {
	case len(restricting) == 0:
		return d
	case len(matched) > 0:
		return Decision{Verdict: Allowed, Policies: sortedKeys(matched)}
	}
	return Decision{Verdict: DeniedL7, Policies: sortedKeys(restricting)}
}

// HasL7 reports whether L7 rules apply to TCP port in direction dir of
// the local endpoint: whether some allow of a rule selecting it has L7
// rules on the port. Its connections there go through the L7 proxy.
func HasL7(policies []*Policy, local Endpoint, dir Direction, port uint16) bool {
	labels := local.labels()
	for _, pol := range policies {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.Selects(labels) {
				continue
			}
			for j := range r.Dir(dir).Allow {
				if _, restricted := r.Dir(dir).Allow[j].L7For(protoTCP, port); restricted {
					return true
				}
			}
		}
	}
	return false
}
