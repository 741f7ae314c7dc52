package policy

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// cilium parses a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
func (p *parser) cilium(root *yaml.Node, kind Kind) *Policy {
	pol := &Policy{Kind: kind, Source: fmt.Sprintf("%s:%d:%d", p.file, root.Line, root.Column)}
	top, ok := p.fields(root, string(kind), []string{"apiVersion", "kind", "metadata", "spec", "specs", "status"}, nil)
	ok = p.metadata(top.vals["metadata"], pol, kind == KindCNP) && ok
	if !top.has("spec") && !top.has("specs") {
		p.errorf(root, "%s %q: needs spec or specs", kind, pol.Name)
		return nil
	}
	if v, has := top.vals["spec"]; has {
		if r, rok := p.ciliumRule(v, pol); rok {
			pol.Rules = append(pol.Rules, r)
		} else {
			ok = false
		}
	}
	if v, has := top.vals["specs"]; has {
		items, lok := p.list(v, "specs")
		ok = ok && lok
		for _, it := range items {
			if r, rok := p.ciliumRule(it, pol); rok {
				pol.Rules = append(pol.Rules, r)
			} else {
				ok = false
			}
		}
	}
	if !ok {
		return nil
	}
	return pol
}

var ruleFields = []string{"endpointSelector", "nodeSelector", "ingress", "ingressDeny", "egress",
	"egressDeny", "enableDefaultDeny", "description", "labels"}

func (p *parser) ciliumRule(n *yaml.Node, pol *Policy) (Rule, bool) {
	var r Rule
	o, ok := p.fields(n, "spec", ruleFields, []string{"log"})
	es, hasES := o.vals["endpointSelector"]
	ns, hasNS := o.vals["nodeSelector"]
	var userSubject Selector // the subject as written: peers' scoping looks at it
	switch {
	case hasES && hasNS:
		p.errorf(o.keys["nodeSelector"], "spec: endpointSelector and nodeSelector are mutually exclusive")
		return r, false
	case hasES:
		sel, sok := p.selector(es, "endpointSelector")
		ok = ok && sok
		userSubject = Selector{Reqs: append([]Requirement(nil), sel.Reqs...)}
		if pol.Kind == KindCNP {
			sel.Reqs = append(sel.Reqs, namespaceIs(pol.Namespace))
		}
		r.Subject = sel
	case hasNS:
		if pol.Kind == KindCNP {
			p.errorf(o.keys["nodeSelector"], "nodeSelector is only valid in a %s", KindCCNP)
			return r, false
		}
		sel, sok := p.selector(ns, "nodeSelector")
		ok = ok && sok
		userSubject = Selector{Reqs: append([]Requirement(nil), sel.Reqs...)}
		r.Subject, r.Host = sel, true
	default:
		p.errorf(n, "spec: needs endpointSelector or nodeSelector")
		return r, false
	}
	sections := 0
	for _, d := range []struct {
		dir         Direction
		allow, deny string
	}{{Ingress, "ingress", "ingressDeny"}, {Egress, "egress", "egressDeny"}} {
		dr := r.Dir(d.dir)
		for _, which := range []string{d.allow, d.deny} {
			items, lok := p.list(o.vals[which], which)
			ok = ok && lok
			if len(items) > 0 {
				dr.DefaultDeny = true
				sections++
			}
			for _, it := range items {
				pr, has, pok := p.ciliumPeerRule(it, which, d.dir, pol, userSubject)
				ok = ok && pok
				if !has {
					continue
				}
				if which == d.deny {
					dr.Deny = append(dr.Deny, pr)
				} else {
					dr.Allow = append(dr.Allow, pr)
				}
			}
		}
	}
	if sections == 0 && ok {
		// As Cilium's Rule.Sanitize, which never imports such a rule: an
		// empty ingress: [] does not isolate as a NetworkPolicy's does.
		p.errorf(n, "spec: needs at least one rule in ingress, ingressDeny, egress or egressDeny (as in Cilium; an empty list is no rule: write ingress: [{}] for default deny)")
		return r, false
	}
	if r.Host && r.Ingress.hasL7() || r.Host && r.Egress.hasL7() {
		p.errorf(o.keys["nodeSelector"], "spec: L7 rules (rules.http) do not apply to the host (as in Cilium): host policies are L3/L4 only")
		ok = false
	}
	ok = p.refuseHostDNS(&r, o.keys["nodeSelector"]) && ok
	if v, has := o.vals["enableDefaultDeny"]; has {
		e, eok := p.fields(v, "enableDefaultDeny", []string{"ingress", "egress"}, nil)
		ok = ok && eok
		// It only turns off what a direction's rules turn on: as in Cilium
		// (pkg/policy/utils.RulesToPolicyEntries), a direction without rules
		// has no entry, so `true` there puts nothing in default deny.
		if b := e.vals["ingress"]; b != nil {
			v, _ := p.boolean(b, "enableDefaultDeny.ingress")
			r.Ingress.DefaultDeny = r.Ingress.DefaultDeny && v
		}
		if b := e.vals["egress"]; b != nil {
			v, _ := p.boolean(b, "enableDefaultDeny.egress")
			r.Egress.DefaultDeny = r.Egress.DefaultDeny && v
		}
	}
	return r, ok
}

// ciliumPeerRule parses one ingress/egress(Deny) rule. has is false when
// the rule matches no traffic (e.g. `{}`).
func (p *parser) ciliumPeerRule(n *yaml.Node, what string, dir Direction, pol *Policy, subject Selector) (pr PeerRule, has, ok bool) {
	from := "from"
	unsupported := []string{"fromRequires", "fromGroups", "fromNodes", "authentication"}
	if dir == Egress {
		from = "to"
		unsupported = []string{"toRequires", "toServices", "toGroups", "toNodes", "authentication"}
	}
	epF, cidrF, setF, entF := from+"Endpoints", from+"CIDR", from+"CIDRSet", from+"Entities"
	known := []string{epF, cidrF, setF, entF, "toPorts", "icmps"}
	l3Groups := [][]string{{epF}, {cidrF, setF}, {entF}}
	if dir == Egress {
		known = append(known, "toFQDNs")
		l3Groups = append(l3Groups, []string{"toFQDNs"})
	}
	o, ok := p.fields(n, what+" rule", known, unsupported)
	hasL3 := false
	groups := 0
	for _, g := range l3Groups {
		used := false
		for _, f := range g {
			if items, _ := p.list(o.vals[f], f); len(items) > 0 {
				used = true
			}
		}
		if used {
			groups++
			hasL3 = true
		}
	}
	if groups > 1 {
		fqdn := ""
		if dir == Egress {
			fqdn = " or toFQDNs"
		}
		p.errorf(o.node, "%s rule: combining %s, %s/%s, %s%s in one rule is not supported (as in Cilium): use separate rules", what, epF, cidrF, setF, entF, fqdn)
		ok = false
	}
	fqdnPeers, fok := p.fqdnPeers(o.vals["toFQDNs"], o.keys["toFQDNs"], what)
	ok = ok && fok
	pr.Peers = append(pr.Peers, fqdnPeers...)
	items, _ := p.list(o.vals[epF], epF)
	for _, it := range items {
		sel, sok := p.selector(it, epF)
		ok = ok && sok
		sel.scopePeer(pol.Namespace, subject)
		pr.Peers = append(pr.Peers, PeerSelector{Selector: &sel})
	}
	items, _ = p.list(o.vals[cidrF], cidrF)
	for _, it := range items {
		if pfx, pok := p.prefix(it, cidrF); pok {
			pr.Peers = append(pr.Peers, PeerSelector{CIDR: pfx})
		} else {
			ok = false
		}
	}
	items, _ = p.list(o.vals[setF], setF)
	for _, it := range items {
		peer, pok := p.cidrSet(it, setF, "cidr", []string{"cidrGroupRef", "cidrGroupSelector"})
		ok = ok && pok
		pr.Peers = append(pr.Peers, peer)
	}
	items, _ = p.list(o.vals[entF], entF)
	for _, it := range items {
		peers, eok := p.entity(it, entF)
		ok = ok && eok
		pr.Peers = append(pr.Peers, peers...)
	}
	tp, hasTP := o.vals["toPorts"]
	ic, hasIC := o.vals["icmps"]
	if hasTP && hasIC {
		p.errorf(o.keys["icmps"], "%s rule: icmps and toPorts cannot be in the same rule (as in Cilium): use separate rules", what)
		ok = false
	}
	hasL4 := false
	if hasTP {
		items, _ := p.list(tp, "toPorts")
		var l7 []PortL7
		var dns []PortDNS
		withRules, withDNS := false, false
		for _, it := range items {
			ports, rules, d, pok := p.ciliumPortRule(it, what)
			ok = ok && pok
			pr.Ports = append(pr.Ports, ports...)
			if rules == nil {
				rules = &PortL7{Ports: ports}
			}
			if d == nil {
				d = &PortDNS{Ports: ports}
			}
			withRules = withRules || rules.HTTP != nil
			withDNS = withDNS || d.Names != nil
			l7 = append(l7, *rules)
			dns = append(dns, *d)
			hasL4 = true
		}
		if withRules {
			pr.L7 = l7
		}
		if withDNS {
			pr.DNS = dns
		}
	}
	if hasIC {
		items, _ := p.list(ic, "icmps")
		for _, it := range items {
			ports, iok := p.icmpRule(it)
			ok = ok && iok
			pr.Ports = append(pr.Ports, ports...)
			hasL4 = true
		}
	}
	if explicitlyNoPeer(p, o, epF, cidrF, setF, entF) {
		// As Cilium (pkg/policy/utils.mergeEndpointSelectors, then
		// mergeL4Filter): `fromEndpoints: []` selects no peer, even beside
		// toPorts; it is not the absent peer list that means every peer.
		return pr, false, ok
	}
	if !hasL3 {
		if !hasL4 {
			// `{}`: selects the endpoint, matches nothing.
			return pr, false, ok
		}
		pr.Peers = []PeerSelector{{All: true}}
	}
	if hasL4 && len(pr.Ports) == 0 || len(pr.Peers) == 0 {
		return pr, false, ok
	}
	return pr, true, ok
}

// explicitlyNoPeer reports whether one of the peer lists is present and
// empty (`[]`, not null).
func explicitlyNoPeer(p *parser, o obj, fields ...string) bool {
	for _, f := range fields {
		if n := o.vals[f]; n != nil {
			if d := p.deref(n); d != nil && d.Kind == yaml.SequenceNode && len(d.Content) == 0 {
				return true
			}
		}
	}
	return false
}
