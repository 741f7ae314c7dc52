package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

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
	switch {
	case hasES && hasNS:
		p.errorf(o.keys["nodeSelector"], "spec: endpointSelector and nodeSelector are mutually exclusive")
		return r, false
	case hasES:
		sel, sok := p.selector(es, "endpointSelector")
		ok = ok && sok
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
		r.Subject, r.Host = sel, true
	default:
		p.errorf(n, "spec: needs endpointSelector or nodeSelector")
		return r, false
	}
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
			}
			for _, it := range items {
				pr, has, pok := p.ciliumPeerRule(it, which, d.dir, pol)
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
	if v, has := o.vals["enableDefaultDeny"]; has {
		e, eok := p.fields(v, "enableDefaultDeny", []string{"ingress", "egress"}, nil)
		ok = ok && eok
		if b := e.vals["ingress"]; b != nil {
			r.Ingress.DefaultDeny, _ = p.boolean(b, "enableDefaultDeny.ingress")
		}
		if b := e.vals["egress"]; b != nil {
			r.Egress.DefaultDeny, _ = p.boolean(b, "enableDefaultDeny.egress")
		}
	}
	return r, ok
}

// ciliumPeerRule parses one ingress/egress(Deny) rule. has is false when
// the rule matches no traffic (e.g. `{}`).
func (p *parser) ciliumPeerRule(n *yaml.Node, what string, dir Direction, pol *Policy) (pr PeerRule, has, ok bool) {
	from := "from"
	unsupported := []string{"fromRequires", "fromGroups", "fromNodes", "authentication"}
	if dir == Egress {
		from = "to"
		unsupported = []string{"toRequires", "toServices", "toFQDNs", "toGroups", "toNodes", "authentication"}
	}
	epF, cidrF, setF, entF := from+"Endpoints", from+"CIDR", from+"CIDRSet", from+"Entities"
	o, ok := p.fields(n, what+" rule", []string{epF, cidrF, setF, entF, "toPorts", "icmps"}, unsupported)
	hasL3 := false
	groups := 0
	for _, g := range [][]string{{epF}, {cidrF, setF}, {entF}} {
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
		p.errorf(o.node, "%s rule: combining %s, %s/%s and %s in one rule is not supported (as in Cilium): use separate rules", what, epF, cidrF, setF, entF)
		ok = false
	}
	items, _ := p.list(o.vals[epF], epF)
	for _, it := range items {
		sel, sok := p.selector(it, epF)
		ok = ok && sok
		switch {
		case pol.Kind == KindCNP && !sel.hasKey("k8s", NamespaceLabel) && !sel.hasKey("reserved", "init"):
			sel.Reqs = append(sel.Reqs, namespaceIs(pol.Namespace))
		case pol.Kind == KindCCNP && len(sel.Reqs) == 0:
			sel.Reqs = append(sel.Reqs, namespaceExists())
		}
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
		for _, it := range items {
			ports, pok := p.ciliumPortRule(it)
			ok = ok && pok
			pr.Ports = append(pr.Ports, ports...)
			hasL4 = true
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

// selector parses a label selector (matchLabels, matchExpressions). Keys
// read "source:key"; without a source they match any source. k8sKeys
// treats keys as Kubernetes label keys (source k8s, no source prefix).
func (p *parser) selector(n *yaml.Node, what string) (Selector, bool) {
	return p.selectorWith(n, what, false)
}

func (p *parser) selectorWith(n *yaml.Node, what string, k8sKeys bool) (Selector, bool) {
	var sel Selector
	o, ok := p.fields(n, what, []string{"matchLabels", "matchExpressions"}, nil)
	if v := p.deref(o.vals["matchLabels"]); v != nil && !isNull(v) {
		if v.Kind != yaml.MappingNode {
			p.errorf(v, "%s.matchLabels: want a mapping, got %s", what, describe(v))
			ok = false
		} else {
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, kok := p.scalar(v.Content[i], what+".matchLabels key")
				val, vok := p.labelValue(v.Content[i+1], what+".matchLabels["+k+"]")
				src, key, sok := p.labelKey(v.Content[i], k, k8sKeys)
				if !kok || !vok || !sok {
					ok = false
					continue
				}
				sel.Reqs = append(sel.Reqs, Requirement{Source: src, Key: key, Op: OpIn, Values: []string{val}})
			}
		}
	}
	exprs, lok := p.list(o.vals["matchExpressions"], what+".matchExpressions")
	ok = ok && lok
	for _, e := range exprs {
		req, rok := p.expression(e, what, k8sKeys)
		ok = ok && rok
		if rok {
			sel.Reqs = append(sel.Reqs, req)
		}
	}
	return sel, ok
}

func (p *parser) labelValue(n *yaml.Node, what string) (string, bool) {
	d := p.deref(n)
	if d == nil {
		return "", false
	}
	if isNull(d) {
		return "", true // "reserved:host": "" is often written as reserved:host: null
	}
	return p.scalar(d, what)
}

func (p *parser) labelKey(n *yaml.Node, k string, k8sKeys bool) (source, key string, ok bool) {
	if k == "" {
		p.errorf(n, "empty label key")
		return "", "", false
	}
	if k8sKeys {
		return "k8s", k, true
	}
	src, key, has := strings.Cut(k, ":")
	if !has {
		return "any", k, true
	}
	if src == "" || key == "" {
		p.errorf(n, "label key %q: want source:key or key", k)
		return "", "", false
	}
	if src == "cidr" || src == "fqdn" {
		p.errorf(n, "label key %q: %s labels are not selectable by label; use %s rules", k, src, map[string]string{"cidr": "fromCIDR/toCIDR", "fqdn": "toFQDNs"}[src])
		return "", "", false
	}
	return src, key, true
}

func (p *parser) expression(n *yaml.Node, what string, k8sKeys bool) (Requirement, bool) {
	var req Requirement
	o, ok := p.fields(n, what+".matchExpressions item", []string{"key", "operator", "values"}, nil)
	if !ok {
		return req, false
	}
	k, kok := p.scalar(o.vals["key"], "key")
	if o.vals["key"] == nil {
		p.errorf(n, "%s.matchExpressions: key is required", what)
		return req, false
	}
	src, key, sok := p.labelKey(o.vals["key"], k, k8sKeys)
	op, ook := p.scalar(o.vals["operator"], "operator")
	if o.vals["operator"] == nil {
		p.errorf(n, "%s.matchExpressions: operator is required", what)
		return req, false
	}
	if !kok || !sok || !ook {
		return req, false
	}
	req = Requirement{Source: src, Key: key, Op: Operator(op)}
	vals, lok := p.list(o.vals["values"], "values")
	if !lok {
		return req, false
	}
	for _, v := range vals {
		s, vok := p.scalar(v, "values item")
		if !vok {
			return req, false
		}
		req.Values = append(req.Values, s)
	}
	switch req.Op {
	case OpIn, OpNotIn:
		if len(req.Values) == 0 {
			p.errorf(o.keys["operator"], "operator %s needs values", op)
			return req, false
		}
	case OpExists, OpDoesNotExist:
		if len(req.Values) != 0 {
			p.errorf(o.keys["values"], "operator %s takes no values", op)
			return req, false
		}
	default:
		p.errorf(o.vals["operator"], "unknown operator %q (want In, NotIn, Exists or DoesNotExist)", op)
		return req, false
	}
	return req, true
}

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

// ciliumPortRule parses a toPorts item.
func (p *parser) ciliumPortRule(n *yaml.Node) ([]PortRange, bool) {
	o, ok := p.fields(n, "toPorts item", []string{"ports"},
		[]string{"rules", "serverNames", "listener", "originatingTLS", "terminatingTLS"})
	items, lok := p.list(o.vals["ports"], "ports")
	ok = ok && lok
	if len(items) == 0 && ok {
		p.errorf(n, "toPorts item: ports is required")
		return nil, false
	}
	var out []PortRange
	for _, it := range items {
		rs, pok := p.port(it, "ANY")
		ok = ok && pok
		out = append(out, rs...)
	}
	return out, ok
}

// port parses {port, endPort, protocol} into ranges; defProto applies
// when protocol is missing (ANY for Cilium, TCP for Kubernetes).
func (p *parser) port(n *yaml.Node, defProto string) ([]PortRange, bool) {
	o, ok := p.fields(n, "port", []string{"port", "endPort", "protocol"}, nil)
	if !ok {
		return nil, false
	}
	lo, hi := uint16(0), uint16(65535)
	if v := o.vals["port"]; v != nil && !isNull(p.deref(v)) {
		s, sok := p.scalar(v, "port")
		if !sok {
			return nil, false
		}
		n, err := strconv.ParseUint(s, 10, 32)
		switch {
		case err != nil && strings.TrimLeft(s, "0123456789") != "":
			p.errorf(v, "named port %q is not supported: use the port number", s)
			return nil, false
		case err != nil || n > 65535:
			p.errorf(v, "port %s out of range 0-65535", s)
			return nil, false
		case n > 0:
			lo, hi = uint16(n), uint16(n)
		}
	}
	if v := o.vals["endPort"]; v != nil && !isNull(p.deref(v)) {
		s, sok := p.scalar(v, "endPort")
		if !sok {
			return nil, false
		}
		e, err := strconv.ParseUint(s, 10, 32)
		switch {
		case err != nil || e > 65535:
			p.errorf(v, "endPort %q: want a number in 0-65535", s)
			return nil, false
		case lo == 0 && hi == 65535:
			p.errorf(v, "endPort needs a port")
			return nil, false
		case uint16(e) < lo:
			p.errorf(v, "endPort %d is below port %d", e, lo)
			return nil, false
		}
		hi = uint16(e)
	}
	proto := defProto
	if v := o.vals["protocol"]; v != nil {
		s, sok := p.scalar(v, "protocol")
		if !sok {
			return nil, false
		}
		proto = s
	}
	var protos []uint8
	switch proto {
	case "TCP":
		protos = []uint8{6}
	case "UDP":
		protos = []uint8{17}
	case "SCTP":
		protos = []uint8{132}
	case "ANY":
		if defProto == "ANY" {
			protos = []uint8{6, 17, 132}
			break
		}
		fallthrough
	default:
		at := o.vals["protocol"]
		if defProto == "ANY" {
			p.errorf(at, "protocol %q: want TCP, UDP, SCTP or ANY (ICMP goes in icmps)", proto)
		} else {
			p.errorf(at, "protocol %q: want TCP, UDP or SCTP", proto)
		}
		return nil, false
	}
	out := make([]PortRange, 0, len(protos))
	for _, pr := range protos {
		out = append(out, PortRange{Proto: pr, Lo: lo, Hi: hi})
	}
	return out, true
}

var icmpv4Types = map[string]uint8{"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5,
	"Echo": 8, "EchoRequest": 8, "RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11,
	"ParameterProblem": 12, "Timestamp": 13, "TimestampReply": 14, "Photuris": 40,
	"ExtendedEchoRequest": 42, "ExtendedEchoReply": 43}

var icmpv6Types = map[string]uint8{"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3,
	"ParameterProblem": 4, "EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130,
	"MulticastListenerReport": 131, "MulticastListenerDone": 132, "RouterSolicitation": 133,
	"RouterAdvertisement": 134, "NeighborSolicitation": 135, "NeighborAdvertisement": 136,
	"RedirectMessage": 137, "RouterRenumbering": 138, "ICMPNodeInformationQuery": 139,
	"ICMPNodeInformationResponse": 140, "InverseNeighborDiscoverySolicitation": 141,
	"InverseNeighborDiscoveryAdvertisement": 142, "HomeAgentAddressDiscoveryRequest": 144,
	"HomeAgentAddressDiscoveryReply": 145, "MobilePrefixSolicitation": 146,
	"MobilePrefixAdvertisement": 147, "DuplicateAddressRequestCodeSuffix": 157,
	"DuplicateAddressConfirmationCodeSuffix": 158, "ExtendedEchoRequest": 160, "ExtendedEchoReply": 161}

// icmpRule parses an icmps item: {fields: [{type, family}]}.
func (p *parser) icmpRule(n *yaml.Node) ([]PortRange, bool) {
	o, ok := p.fields(n, "icmps item", []string{"fields"}, nil)
	items, lok := p.list(o.vals["fields"], "icmps.fields")
	ok = ok && lok
	if len(items) == 0 && ok {
		p.errorf(n, "icmps item: fields is required")
		return nil, false
	}
	var out []PortRange
	for _, it := range items {
		f, fok := p.fields(it, "icmps field", []string{"type", "family"}, nil)
		if !fok {
			ok = false
			continue
		}
		family, proto, names := "IPv4", uint8(1), icmpv4Types
		if v := f.vals["family"]; v != nil {
			family, _ = p.scalar(v, "family")
			switch family {
			case "IPv4":
			case "IPv6":
				proto, names = 58, icmpv6Types
			default:
				p.errorf(v, "icmp family %q: want IPv4 or IPv6", family)
				ok = false
				continue
			}
		}
		v := f.vals["type"]
		if v == nil {
			p.errorf(it, "icmps field: type is required")
			ok = false
			continue
		}
		s, sok := p.scalar(v, "type")
		if !sok {
			ok = false
			continue
		}
		t, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			nt, known := names[s]
			if !known {
				p.errorf(v, "icmp type %q: want 0-255 or an %s type name", s, family)
				ok = false
				continue
			}
			t = uint64(nt)
		}
		out = append(out, PortRange{Proto: proto, Lo: uint16(t), Hi: uint16(t)})
	}
	return out, ok
}
