package compile

import (
	"cmp"
	"slices"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// DNSRedirect is one (endpoint, protocol, port) whose egress queries go
// through the DNS proxy.
type DNSRedirect struct {
	Endpoint uint32
	Proto    uint8
	Port     uint16
}

// compileDNS builds the DNS proxy's rules of one local endpoint, as
// policy.EvaluateDNS decides: its queries on every (protocol, port) of an
// egress allow with rules.dns are redirected, and each egress allow that
// covers such a port becomes one rule for it, covering the identities of
// the allow's peers (any server for an allow of every peer) with the
// allow's rules.dns there (none: every name). An endpoint outside egress
// default deny is open: a query to a server no rule covers passes, as
// L3/L4 policy lets it. An endpoint in audit mode has its denied queries
// forwarded and reported AUDIT, as its kernel policy does with
// connections.
func (c *Compiled) compileDNS(pols []*policy.Policy, local policy.Endpoint, audit bool, universe []identity.Identity) {
	type point struct {
		proto uint8
		port  uint16
	}
	var points []point
	for _, pol := range pols {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.SelectsEndpoint(local) {
				continue
			}
			for j := range r.Egress.Allow {
				for _, pr := range r.Egress.Allow[j].DNSPorts() {
					points = append(points, point{pr.Proto, pr.Lo})
				}
			}
		}
	}
	if len(points) == 0 {
		return
	}
	slices.SortFunc(points, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.port, b.port), cmp.Compare(a.proto, b.proto))
	})
	points = slices.Compact(points)
	var rules []dnsmatch.Rule
	var candidates []dnsCandidate
	for _, pt := range points {
		c.DNSRedirects = append(c.DNSRedirects, DNSRedirect{Endpoint: local.ID, Proto: pt.proto, Port: pt.port})
		for _, pol := range pols {
			for i := range pol.Rules {
				r := &pol.Rules[i]
				if !r.SelectsEndpoint(local) {
					continue
				}
				for j := range r.Egress.Allow {
					pr := &r.Egress.Allow[j]
					if !coversPort(pr, pt.proto, pt.port) {
						continue
					}
					ref := api.PolicyRef{Name: pol.Name, Namespace: pol.Namespace, Kind: string(pol.Kind), Revision: pol.Revision}
					rule, ok := c.dnsRule(ref, pr, pt.proto, pt.port, universe)
					cand := dnsCandidate{ref: ref, peers: pr, proto: pt.proto, port: pt.port, rule: -1}
					if ok {
						cand.rule = len(rules)
						rules = append(rules, rule)
					}
					candidates = append(candidates, cand)
				}
			}
		}
	}
	if c.DNS.ByEndpoint == nil {
		c.DNS.ByEndpoint = map[uint32][]dnsmatch.Rule{}
		c.DNS.Open = map[uint32]bool{}
		c.DNS.Audit = map[uint32]bool{}
		c.DNS.IdentityOf = c.IdentityOf
	}
	c.DNS.ByEndpoint[local.ID] = rules
	if c.dnsCandidates == nil {
		c.dnsCandidates = map[uint32][]dnsCandidate{}
	}
	c.dnsCandidates[local.ID] = candidates
	if audit {
		c.DNS.Audit[local.ID] = true
	}
	if !c.Enforce[local.ID].Egress {
		c.DNS.Open[local.ID] = true
	}
}

// dnsCandidate is an egress allow that covers one of an endpoint's DNS
// (protocol, port): a rule when its peers select an identity (rule, its
// index in the endpoint's rules; -1: none), for Admit to redo with new
// identities.
type dnsCandidate struct {
	ref   api.PolicyRef
	peers *policy.PeerRule
	proto uint8
	port  uint16
	rule  int
}

// dnsRule is the rule an egress allow makes on one (protocol, port); false
// when its peers select no identity.
func (c *Compiled) dnsRule(ref api.PolicyRef, pr *policy.PeerRule, proto uint8, port uint16, universe []identity.Identity) (dnsmatch.Rule, bool) {
	rule := dnsmatch.Rule{Policy: ref, Port: port, Protocol: proto}
	any := false
	for j := range pr.Peers {
		any = any || pr.Peers[j].All
	}
	if !any {
		for _, id := range universe {
			for j := range pr.Peers {
				if c.selectsIdentity(&pr.Peers[j], id) {
					rule.ServerIdentities = append(rule.ServerIdentities, uint32(id.ID))
					break
				}
			}
		}
		if len(rule.ServerIdentities) == 0 {
			return rule, false
		}
	}
	if names, restricted := pr.DNSFor(proto, port); restricted {
		for _, m := range names {
			rule.Names = append(rule.Names, m.Selector())
		}
	}
	return rule, true
}

// coversPort reports whether pr's ports include proto and port.
func coversPort(pr *policy.PeerRule, proto uint8, port uint16) bool {
	if len(pr.Ports) == 0 {
		return true
	}
	for _, r := range pr.Ports {
		if r.Proto == proto && r.Lo <= port && port <= r.Hi {
			return true
		}
	}
	return false
}
