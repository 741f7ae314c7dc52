package policy

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// k8s parses a networking.k8s.io/v1 NetworkPolicy.
func (p *parser) k8s(root *yaml.Node) *Policy {
	pol := &Policy{Kind: KindKNP, Source: fmt.Sprintf("%s:%d:%d", p.file, root.Line, root.Column)}
	top, ok := p.fields(root, "NetworkPolicy", []string{"apiVersion", "kind", "metadata", "spec", "status"}, nil)
	ok = p.metadata(top.vals["metadata"], pol, true) && ok
	specNode := top.vals["spec"]
	if specNode == nil {
		p.errorf(root, "NetworkPolicy %q: spec is required", pol.Name)
		return nil
	}
	spec, sok := p.fields(specNode, "NetworkPolicy spec", []string{"podSelector", "policyTypes", "ingress", "egress"}, nil)
	ok = ok && sok
	var r Rule
	if v := spec.vals["podSelector"]; v != nil {
		sel, selOK := p.selectorWith(v, "podSelector", true)
		ok = ok && selOK
		r.Subject = sel
	} else {
		p.errorf(specNode, "NetworkPolicy spec: podSelector is required (use {} for every pod)")
		ok = false
	}
	r.Subject.Reqs = append(r.Subject.Reqs, namespaceIs(pol.Namespace))

	ingress, iok := p.list(spec.vals["ingress"], "ingress")
	egress, eok := p.list(spec.vals["egress"], "egress")
	ok = ok && iok && eok
	if v, has := spec.vals["policyTypes"]; has {
		types, lok := p.list(v, "policyTypes")
		ok = ok && lok
		for _, t := range types {
			s, _ := p.scalar(t, "policyTypes item")
			switch s {
			case "Ingress":
				r.Ingress.DefaultDeny = true
			case "Egress":
				r.Egress.DefaultDeny = true
			default:
				p.errorf(t, "policyTypes: %q, want Ingress or Egress", s)
				ok = false
			}
		}
	} else {
		// The API server's default: Ingress, plus Egress when egress rules exist.
		r.Ingress.DefaultDeny = true
		r.Egress.DefaultDeny = len(egress) > 0
	}
	// Rules of a direction not in policyTypes do not apply (Kubernetes
	// semantics); they are still validated.
	for _, d := range []struct {
		dir   Direction
		items []*yaml.Node
		peer  string
	}{{Ingress, ingress, "from"}, {Egress, egress, "to"}} {
		dr := r.Dir(d.dir)
		for _, it := range d.items {
			pr, pok := p.k8sRule(it, d.dir.String(), d.peer, pol)
			ok = ok && pok
			if dr.DefaultDeny && len(pr.Peers) > 0 {
				dr.Allow = append(dr.Allow, pr)
			}
		}
	}
	if !ok {
		return nil
	}
	pol.Rules = []Rule{r}
	return pol
}

func (p *parser) k8sRule(n *yaml.Node, what, peerField string, pol *Policy) (PeerRule, bool) {
	var pr PeerRule
	o, ok := p.fields(n, what+" rule", []string{peerField, "ports"}, nil)
	peers, lok := p.list(o.vals[peerField], peerField)
	ok = ok && lok
	if len(peers) == 0 {
		pr.Peers = []PeerSelector{{All: true}}
	}
	for _, it := range peers {
		peer, pok := p.k8sPeer(it, peerField, pol)
		ok = ok && pok
		pr.Peers = append(pr.Peers, peer)
	}
	ports, lok := p.list(o.vals["ports"], "ports")
	ok = ok && lok
	for _, it := range ports {
		rs, pok := p.port(it, "TCP")
		ok = ok && pok
		pr.Ports = append(pr.Ports, rs...)
	}
	return pr, ok
}

func (p *parser) k8sPeer(n *yaml.Node, what string, pol *Policy) (PeerSelector, bool) {
	o, ok := p.fields(n, what+" peer", []string{"podSelector", "namespaceSelector", "ipBlock"}, nil)
	if !ok {
		return PeerSelector{}, false
	}
	pod, hasPod := o.vals["podSelector"]
	ns, hasNS := o.vals["namespaceSelector"]
	ip, hasIP := o.vals["ipBlock"]
	switch {
	case hasIP && (hasPod || hasNS):
		p.errorf(o.keys["ipBlock"], "%s peer: ipBlock cannot be combined with podSelector or namespaceSelector", what)
		return PeerSelector{}, false
	case hasIP:
		return p.cidrSet(ip, "ipBlock", "cidr", nil)
	case !hasPod && !hasNS:
		p.errorf(n, "%s peer: needs podSelector, namespaceSelector or ipBlock", what)
		return PeerSelector{}, false
	}
	var sel Selector
	if hasPod {
		sel, ok = p.selectorWith(pod, "podSelector", true)
	}
	if hasNS {
		nsReqs, nok := p.namespaceSelector(ns)
		ok = ok && nok
		sel.Reqs = append(sel.Reqs, nsReqs...)
	} else {
		sel.Reqs = append(sel.Reqs, namespaceIs(pol.Namespace))
	}
	return PeerSelector{Selector: &sel}, ok
}

// namespaceSelector translates a namespace selector into requirements on
// the pod's labels, as Cilium does: every key K becomes the namespace
// label k8s:io.cilium.k8s.namespace.labels.K (which every pod of a
// namespace labelled K carries), and only pods match (namespace label
// Exists), so `{}` is every pod of every namespace.
func (p *parser) namespaceSelector(n *yaml.Node) ([]Requirement, bool) {
	sel, ok := p.selectorWith(n, "namespaceSelector", true)
	reqs := []Requirement{namespaceExists()}
	for _, r := range sel.Reqs {
		r.Key = NamespaceLabelsPrefix + r.Key
		reqs = append(reqs, r)
	}
	return reqs, ok
}
