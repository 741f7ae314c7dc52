package policy

import (
	"net/netip"

	"gopkg.in/yaml.v3"
)

// prefix parses a CIDR (or a bare address, as a host prefix).
func (p *parser) prefix(n *yaml.Node, what string) (netip.Prefix, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return netip.Prefix{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		p.errorf(n, "%s: bad CIDR %q", what, s)
		return netip.Prefix{}, false
	}
	if pfx.Addr().Is4In6() {
		p.errorf(n, "%s: IPv4-mapped CIDR %q: write it as IPv4", what, s)
		return netip.Prefix{}, false
	}
	return pfx.Masked(), true
}

// cidrSet parses {cidr, except} (Cilium CIDRSet, Kubernetes ipBlock).
func (p *parser) cidrSet(n *yaml.Node, what, cidrField string, unsupported []string) (PeerSelector, bool) {
	var peer PeerSelector
	o, ok := p.fields(n, what, []string{cidrField, "except"}, unsupported)
	if !ok {
		return peer, false
	}
	v := o.vals[cidrField]
	if v == nil {
		p.errorf(n, "%s: %s is required", what, cidrField)
		return peer, false
	}
	peer.CIDR, ok = p.prefix(v, what+"."+cidrField)
	if !ok {
		return peer, false
	}
	items, lok := p.list(o.vals["except"], what+".except")
	ok = lok
	for _, it := range items {
		e, eok := p.prefix(it, what+".except")
		if !eok {
			ok = false
			continue
		}
		if e.Addr().BitLen() != peer.CIDR.Addr().BitLen() || e.Bits() < peer.CIDR.Bits() || !peer.CIDR.Contains(e.Addr()) {
			p.errorf(it, "%s: except %s is not inside %s", what, e, peer.CIDR)
			ok = false
			continue
		}
		peer.Except = append(peer.Except, e)
	}
	return peer, ok
}

var clusterEntities = []string{"host", "remote-node", "init", "health", "unmanaged", "kube-apiserver", "ingress"}

// entity maps an entity name to peers.
func (p *parser) entity(n *yaml.Node, what string) ([]PeerSelector, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return nil, false
	}
	switch s {
	case "all":
		return []PeerSelector{{All: true}}, true
	case "none":
		return nil, true
	case "world":
		return []PeerSelector{{Selector: reservedSelector("world")}}, true
	case "cluster":
		peers := []PeerSelector{{Selector: &Selector{Reqs: []Requirement{namespaceExists()}}}}
		for _, e := range clusterEntities {
			peers = append(peers, PeerSelector{Selector: reservedSelector(e)})
		}
		return peers, true
	}
	if contains(clusterEntities, s) {
		return []PeerSelector{{Selector: reservedSelector(s)}}, true
	}
	p.errorf(n, "%s: entity %q is not supported (want all, world, cluster, host, remote-node, kube-apiserver, health, init, unmanaged, ingress or none)", what, s)
	return nil, false
}
