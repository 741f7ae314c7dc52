package policy

import (
	"gopkg.in/yaml.v3"

	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
)

// The DNS parts of a Cilium rule: toPorts[].rules.dns and toFQDNs, with
// Cilium's constraints (pkg/policy/api/rule_validation.go): DNS rules only
// on egress allows, on UDP or TCP ports that are neither 0 nor a range;
// toFQDNs only in egress allows and never beside another L3 selector.

// dnsRules parses a toPorts item's `rules` for its ports, one group per
// ports entry (what names the peer rule: egress, ingressDeny...). Only
// rules.dns is enforced; the other L7 kinds are refused. `rules: {}` and
// `rules: {dns: []}` are no L7 rule, as in Cilium. It returns the item's
// DNS part (nil without rules.dns) and its ports: with rules.dns, protocol
// ANY is UDP and TCP (Cilium's ANY without SCTP; DNS has no SCTP).
func (p *parser) dnsRules(n *yaml.Node, what string, groups [][]PortRange) (*PortDNS, []PortRange, bool) {
	var all []PortRange
	for _, g := range groups {
		all = append(all, g...)
	}
	o, ok := p.fields(n, "rules", []string{"dns"}, []string{"http", "kafka", "l7proto", "l7"})
	items, lok := p.list(o.vals["dns"], "rules.dns")
	if !ok || !lok || len(items) == 0 {
		return nil, all, ok && lok
	}
	at := o.keys["dns"]
	switch what {
	case "egress":
	case "ingress":
		p.errorf(at, "ingress rule: rules.dns: DNS rules are not allowed on ingress (as in Cilium): the DNS proxy sees an endpoint's own queries")
		return nil, nil, false
	default:
		p.errorf(at, "%s rule: L7 rules cannot deny (as in Cilium): allow the names that may pass in egress", what)
		return nil, nil, false
	}
	var ports []PortRange
	for _, g := range groups {
		for _, r := range g {
			switch {
			case r.Lo == 0 && r.Hi == 65535:
				p.errorf(at, "rules.dns: every port needs a port number (as in Cilium: L7 rules can not be used when a port is 0)")
				return nil, nil, false
			case r.Lo != r.Hi:
				p.errorf(at, "rules.dns: DNS rules do not support port ranges (as in Cilium): list the ports")
				return nil, nil, false
			case r.Proto == 132 && len(g) == 3: // protocol ANY: TCP, UDP, SCTP
				continue
			case r.Proto != 6 && r.Proto != 17:
				p.errorf(at, "rules.dns: DNS runs over UDP or TCP (want protocol UDP, TCP or ANY)")
				return nil, nil, false
			}
			ports = append(ports, r)
		}
	}
	d := &PortDNS{Ports: ports, Names: []*dnsmatch.Matcher{}}
	for _, it := range items {
		m, mok := p.dnsSelector(it, "rules.dns item")
		ok = ok && mok
		if mok {
			d.Names = append(d.Names, m)
		}
	}
	if !ok {
		return nil, nil, false
	}
	return d, ports, true
}

// dnsSelector parses {matchName} or {matchPattern} (rules.dns and toFQDNs
// items), compiled with Cilium's meaning.
func (p *parser) dnsSelector(n *yaml.Node, what string) (*dnsmatch.Matcher, bool) {
	o, ok := p.fields(n, what, []string{"matchName", "matchPattern"}, nil)
	if !ok {
		return nil, false
	}
	var sel dnsmatch.Selector
	if v := o.vals["matchName"]; v != nil {
		if sel.MatchName, ok = p.str(v, what+".matchName"); !ok {
			return nil, false
		}
	}
	if v := o.vals["matchPattern"]; v != nil {
		if sel.MatchPattern, ok = p.str(v, what+".matchPattern"); !ok {
			return nil, false
		}
	}
	m, err := dnsmatch.Compile(sel)
	if err != nil {
		p.errorf(o.node, "%s: %v", what, err)
		return nil, false
	}
	return m, true
}

// fqdnPeers parses the toFQDNs list n (its key at key) of a what rule.
func (p *parser) fqdnPeers(n, key *yaml.Node, what string) ([]PeerSelector, bool) {
	items, ok := p.list(n, "toFQDNs")
	if !ok || len(items) == 0 {
		return nil, ok
	}
	if what != "egress" {
		p.errorf(key, "%s rule: toFQDNs cannot deny (as in Cilium, egressDeny has no toFQDNs): allow the names in egress", what)
		return nil, false
	}
	var out []PeerSelector
	for _, it := range items {
		m, mok := p.dnsSelector(it, "toFQDNs item")
		ok = ok && mok
		if mok {
			out = append(out, PeerSelector{FQDN: m})
		}
	}
	return out, ok
}

// selectsName reports whether a toFQDNs selector selects one of names.
func (ps *PeerSelector) selectsName(names []string) bool {
	for _, n := range names {
		if ps.FQDN.Match(n) {
			return true
		}
	}
	return false
}

// refuseHostDNS refuses rules.dns and toFQDNs in a host policy: the DNS
// proxy sees pods' queries only.
func (p *parser) refuseHostDNS(r *Rule, at *yaml.Node) bool {
	if r.Host && (r.Egress.hasDNS() || r.Ingress.hasDNS()) {
		p.errorf(at, "spec: rules.dns and toFQDNs %s in a host policy (nodeSelector): the DNS proxy sees pods' queries only",
			notSupported)
		return false
	}
	return true
}
