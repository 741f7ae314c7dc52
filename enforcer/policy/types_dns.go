package policy

import (
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
)

// PortDNS is one toPorts item of an egress allow rule some item of which
// has rules.dns: on the item's ports, queries to the rule's peers go
// through the DNS proxy.
type PortDNS struct {
	// Ports are the item's ports: single UDP and TCP ports for an item
	// with rules.dns, anything for one without.
	Ports []PortRange
	// Names are the item's rules.dns: a query passes when one selects its
	// name. Nil for an item without rules.dns, which lets every query on
	// its ports pass (Cilium: an L3/L4 allow of the same port and peers
	// makes the L7 rules moot).
	Names []*dnsmatch.Matcher
}

// covers reports whether the item's ports include proto and port.
func (d *PortDNS) covers(proto uint8, port uint16) bool {
	for _, r := range d.Ports {
		if r.Proto == proto && r.Lo <= port && port <= r.Hi {
			return true
		}
	}
	return false
}

// HasDNS reports whether some toPorts item of pr has rules.dns.
func (pr *PeerRule) HasDNS() bool {
	for i := range pr.DNS {
		if pr.DNS[i].Names != nil {
			return true
		}
	}
	return false
}

// DNSPorts lists the (protocol, port) points of pr's items with rules.dns:
// the ports whose queries go through the DNS proxy.
func (pr *PeerRule) DNSPorts() []PortRange {
	var out []PortRange
	for i := range pr.DNS {
		if pr.DNS[i].Names != nil {
			out = append(out, pr.DNS[i].Ports...)
		}
	}
	return out
}

// DNSFor returns pr's rules.dns on proto and port, which pr's ports must
// cover: restricted is false when pr lets every query there pass (no item
// covering the port has rules.dns, or one without rules.dns covers it),
// else names are the union of the covering items' selectors.
func (pr *PeerRule) DNSFor(proto uint8, port uint16) (names []*dnsmatch.Matcher, restricted bool) {
	for i := range pr.DNS {
		it := &pr.DNS[i]
		if !it.covers(proto, port) {
			continue
		}
		if it.Names == nil {
			return nil, false
		}
		names = append(names, it.Names...)
	}
	return names, len(names) > 0
}

// hasDNS reports whether an allow of d has rules.dns or a toFQDNs peer.
func (d *DirectionRules) hasDNS() bool {
	for i := range d.Allow {
		if d.Allow[i].HasDNS() {
			return true
		}
		for _, p := range d.Allow[i].Peers {
			if p.FQDN != nil {
				return true
			}
		}
	}
	return false
}

// FQDNMatchers lists every toFQDNs selector of the policies, each once
// (by its text): what the addresses of DNS answers are matched against.
func FQDNMatchers(policies []*Policy) []*dnsmatch.Matcher {
	seen := map[dnsmatch.Selector]bool{}
	var out []*dnsmatch.Matcher
	for _, pol := range policies {
		for i := range pol.Rules {
			for _, pr := range pol.Rules[i].Egress.Allow {
				for _, ps := range pr.Peers {
					if ps.FQDN != nil && !seen[ps.FQDN.Selector()] {
						seen[ps.FQDN.Selector()] = true
						out = append(out, ps.FQDN)
					}
				}
			}
		}
	}
	return out
}
