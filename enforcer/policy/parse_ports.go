package policy

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ciliumPortRule parses a toPorts item of a what (ingress, egressDeny...)
// rule: its ports, its L7 rules (rules.http; nil without) and its
// rules.dns (nil without; see dnsRules). One item carries one L7 kind.
func (p *parser) ciliumPortRule(n *yaml.Node, what string) ([]PortRange, *PortL7, *PortDNS, bool) {
	o, ok := p.fields(n, "toPorts item", []string{"ports", "rules"},
		[]string{"serverNames", "listener", "originatingTLS", "terminatingTLS"})
	items, lok := p.list(o.vals["ports"], "ports")
	ok = ok && lok
	if len(items) == 0 && ok {
		p.errorf(n, "toPorts item: ports is required")
		return nil, nil, nil, false
	}
	var groups [][]PortRange
	var out []PortRange
	for _, it := range items {
		rs, pok := p.port(it, "ANY")
		ok = ok && pok
		groups = append(groups, rs)
		out = append(out, rs...)
	}
	v, has := o.vals["rules"]
	if !has || !ok {
		return out, nil, nil, ok
	}
	if p.hasField(v, "http") {
		if p.hasField(v, "dns") {
			p.errorf(v, "rules: one kind of L7 rules per toPorts item (as in Cilium): http and dns")
			return nil, nil, nil, false
		}
		l7, ok := p.l7Rules(v, what, out)
		return out, l7, nil, ok
	}
	d, ports, ok := p.dnsRules(v, what, groups)
	return ports, nil, d, ok
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
	if n, portless := extendedProtocols[proto]; portless && defProto == "ANY" {
		// Cilium's extended IP protocols have no ports: port empty or 0.
		if lo != 0 || hi != 65535 {
			at := o.vals["port"]
			if at == nil {
				at = o.vals["endPort"]
			}
			p.errorf(at, "protocol %s has no ports: port must be empty or 0 (as in Cilium)", proto)
			return nil, false
		}
		return []PortRange{{Proto: n, Lo: 0, Hi: 65535}}, true
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
			p.errorf(at, "protocol %q: want TCP, UDP, SCTP, ANY or a port-less IP protocol (VRRP, IGMP, GRE, IPIP, IPV6, ESP, AH); ICMP goes in icmps", proto)
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

// extendedProtocols are the IP protocols without ports Cilium accepts in
// toPorts (api.L4Proto; --enable-extended-ip-protocols), by protocol
// number. An IPv6 packet's AH is an extension header: such a packet is
// judged by the header after it, as Cilium judges it.
var extendedProtocols = map[string]uint8{"VRRP": 112, "IGMP": 2, "GRE": 47, "IPIP": 4, "IPV6": 41, "ESP": 50, "AH": 51}

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

// hasField reports whether n is a mapping with the key name.
func (p *parser) hasField(n *yaml.Node, name string) bool {
	n = p.deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return true
		}
	}
	return false
}
