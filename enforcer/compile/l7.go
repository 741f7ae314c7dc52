package compile

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// L7Port is a TCP port of a local endpoint, in one direction, that L7
// rules cover (policy.HasL7): its connections go through the L7 proxy,
// which lets a request pass when the group of its peer's address allows
// it. The kernel's policy judges the connection first, unchanged.
type L7Port struct {
	Endpoint  uint32
	Direction policy.Direction
	Port      uint16
	// Addrs are the endpoint's addresses.
	Addrs []netip.Addr
	// Audit: requests are judged and reported, never denied (the
	// endpoint's audit mode).
	Audit bool
	// Groups partition the peers: every address is in exactly one group
	// (the one of its identity: the ipcache's longest prefix, a miss is
	// world); a group whose Peers are empty is left out.
	Groups []L7Group
	// Revisions are the revisions that applied the groups' policies.
	Revisions map[policy.ID]uint64
}

// L7Group is the peers of some identities and the requests they may send.
type L7Group struct {
	// Identities are the group's identities, ascending.
	Identities []uint32
	// Peers are their addresses.
	Peers AddrSet
	// AllowAll: every request passes (an allow without L7 rules on the
	// port matches these peers, or no policy puts the endpoint in default
	// deny there and none allows them).
	AllowAll bool
	// HTTP: otherwise a request passes when it matches one of these; none
	// lets nothing pass (peers the kernel drops anyway).
	HTTP []policy.HTTPRule
	// Policies name the deciding policies (sorted): those whose rules
	// HTTP are, or, when HTTP is empty, every policy with L7 rules on the
	// port.
	Policies []policy.ID
}

// AddrSet is a set of peer addresses: those inside a Range, and with Rest
// every address outside all of RestExcept too.
type AddrSet struct {
	Ranges     []AddrRange
	Rest       bool
	RestExcept []netip.Prefix
}

// AddrRange is the addresses of Prefix but of none of Except.
type AddrRange struct {
	Prefix netip.Prefix
	Except []netip.Prefix
}

// Contains reports whether a is in the set.
func (s *AddrSet) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, r := range s.Ranges {
		if r.Prefix.Contains(a) && !slices.ContainsFunc(r.Except, func(e netip.Prefix) bool { return e.Contains(a) }) {
			return true
		}
	}
	return s.Rest && !slices.ContainsFunc(s.RestExcept, func(e netip.Prefix) bool { return e.Contains(a) })
}

// Empty reports whether the set has no address for certain.
func (s *AddrSet) Empty() bool { return len(s.Ranges) == 0 && !s.Rest }

// compileL7 fills c.L7 for the local endpoints.
func (c *Compiled) compileL7(in Input, universe []identity.Identity) {
	for _, ep := range in.Endpoints {
		local := policy.Endpoint{ID: ep.ID, Namespace: ep.Namespace, Labels: ep.Labels}
		for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
			for _, port := range l7Ports(in.Policies, local, dir) {
				lp := L7Port{Endpoint: ep.ID, Direction: dir, Port: port, Addrs: ep.IPs, Audit: ep.Audit}
				lp.Groups = c.l7Groups(in.Policies, local, dir, port, universe)
				lp.Revisions = map[policy.ID]uint64{}
				for _, pol := range in.Policies {
					for _, g := range lp.Groups {
						if slices.Contains(g.Policies, pol.ID()) {
							lp.Revisions[pol.ID()] = pol.Revision
						}
					}
				}
				c.L7 = append(c.L7, lp)
			}
		}
	}
}

// l7Ports lists, ascending, the TCP ports L7 rules cover in direction dir
// of the local endpoint.
func l7Ports(pols []*policy.Policy, local policy.Endpoint, dir policy.Direction) []uint16 {
	var out []uint16
	for _, pol := range pols {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.SelectsEndpoint(local) {
				continue
			}
			for _, pr := range r.Dir(dir).Allow {
				for _, it := range pr.L7 {
					if it.HTTP == nil {
						continue
					}
					for _, pt := range it.Ports {
						if pt.Proto == protoTCP && pt.Lo == pt.Hi && !slices.Contains(out, pt.Lo) {
							out = append(out, pt.Lo)
						}
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

const protoTCP = 6

// l7Decision is what one identity may request on a port.
type l7Decision struct {
	allowAll bool
	rules    []policy.HTTPRule
	policies map[policy.ID]bool
}

// key identifies a decision: identities with equal keys share a group.
func (d *l7Decision) key(ruleIDs map[string]int) string {
	if d.allowAll {
		return "*"
	}
	var ids []int
	for i := range d.rules {
		ids = append(ids, ruleIDs[ruleKey(&d.rules[i])])
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.Itoa(id))
		b.WriteByte(',')
	}
	for _, id := range sortedIDs(d.policies) {
		b.WriteString("|" + string(id.Kind) + "/" + id.Ref())
	}
	return b.String()
}

func ruleKey(r *policy.HTTPRule) string {
	var b strings.Builder
	for _, s := range []string{r.Method, r.Path, r.Host} {
		b.WriteString(strconv.Quote(s))
	}
	for _, h := range r.Headers {
		b.WriteString(strconv.Quote(h.Name) + strconv.Quote(h.Value))
	}
	return b.String()
}

// decideL7 is policy.EvaluateHTTP's decision for every request of an
// identity's peers, as compile's identities see them.
func (c *Compiled) decideL7(pols []*policy.Policy, local policy.Endpoint, dir policy.Direction, port uint16,
	id identity.Identity, portPolicies map[policy.ID]bool) l7Decision {
	selected, allowed := false, false
	d := l7Decision{policies: map[policy.ID]bool{}}
	for _, pol := range pols {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.SelectsEndpoint(local) {
				continue
			}
			dr := r.Dir(dir)
			selected = selected || dr.DefaultDeny
			for j := range dr.Deny {
				if c.peerRuleSelects(&dr.Deny[j], id, port) {
					return l7Decision{policies: portPolicies} // the kernel drops it
				}
			}
			for j := range dr.Allow {
				pr := &dr.Allow[j]
				if !c.peerRuleSelects(pr, id, port) {
					continue
				}
				allowed = true
				rules, restricted := pr.L7For(protoTCP, port)
				if !restricted {
					d.allowAll = true
					continue
				}
				d.rules = append(d.rules, rules...)
				d.policies[pol.ID()] = true
			}
		}
	}
	switch {
	case d.allowAll || !allowed && !selected:
		return l7Decision{allowAll: true}
	case !allowed:
		return l7Decision{policies: portPolicies}
	}
	return d
}

// peerRuleSelects reports whether pr matches the identity on TCP port.
func (c *Compiled) peerRuleSelects(pr *policy.PeerRule, id identity.Identity, port uint16) bool {
	if len(pr.Ports) > 0 && !slices.ContainsFunc(pr.Ports, func(r policy.PortRange) bool {
		return r.Proto == protoTCP && r.Lo <= port && port <= r.Hi
	}) {
		return false
	}
	for j := range pr.Peers {
		if c.selectsIdentity(&pr.Peers[j], id) {
			return true
		}
	}
	return false
}

// l7Groups groups the identities of the universe by decision and gives
// each group its addresses.
func (c *Compiled) l7Groups(pols []*policy.Policy, local policy.Endpoint, dir policy.Direction, port uint16,
	universe []identity.Identity) []L7Group {
	portPolicies := map[policy.ID]bool{}
	for _, pol := range pols {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.SelectsEndpoint(local) {
				continue
			}
			for j := range r.Dir(dir).Allow {
				if _, restricted := r.Dir(dir).Allow[j].L7For(protoTCP, port); restricted {
					portPolicies[pol.ID()] = true
				}
			}
		}
	}
	ruleIDs := map[string]int{}
	byKey := map[string]*L7Group{}
	var order []string
	for _, id := range universe {
		d := c.decideL7(pols, local, dir, port, id, portPolicies)
		for i := range d.rules {
			if _, ok := ruleIDs[ruleKey(&d.rules[i])]; !ok {
				ruleIDs[ruleKey(&d.rules[i])] = len(ruleIDs)
			}
		}
		k := d.key(ruleIDs)
		g := byKey[k]
		if g == nil {
			g = &L7Group{AllowAll: d.allowAll, Policies: sortedIDs(d.policies)}
			if !d.allowAll {
				seen := map[string]bool{}
				for i := range d.rules {
					if rk := ruleKey(&d.rules[i]); !seen[rk] {
						seen[rk] = true
						g.HTTP = append(g.HTTP, d.rules[i])
					}
				}
			}
			byKey[k] = g
			order = append(order, k)
		}
		g.Identities = append(g.Identities, uint32(id.ID))
	}
	var out []L7Group
	for _, k := range order {
		g := byKey[k]
		g.Peers = c.addrsOf(g.Identities)
		if !g.Peers.Empty() {
			out = append(out, *g)
		}
	}
	return out
}

func sortedIDs(m map[policy.ID]bool) []policy.ID {
	var out []policy.ID
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b policy.ID) int {
		if a.Less(b) {
			return -1
		}
		if b.Less(a) {
			return 1
		}
		return 0
	})
	return out
}

// addrsOf is the set of addresses whose identity (the ipcache's longest
// prefix; a miss is world) is one of ids.
func (c *Compiled) addrsOf(ids []uint32) AddrSet {
	in := func(id uint32) bool { return slices.Contains(ids, id) }
	var s AddrSet
	var others []netip.Prefix
	for p, id := range c.IPCache {
		if !in(id) {
			others = append(others, p)
		}
	}
	sortPrefixes(others)
	for p, id := range c.IPCache {
		if !in(id) {
			continue
		}
		r := AddrRange{Prefix: p}
		for _, o := range others {
			if o.Bits() > p.Bits() && within(o, p) {
				r.Except = append(r.Except, o)
			}
		}
		s.Ranges = append(s.Ranges, r)
	}
	slices.SortFunc(s.Ranges, func(a, b AddrRange) int { return comparePrefixes(a.Prefix, b.Prefix) })
	if in(uint32(identity.World)) {
		s.Rest, s.RestExcept = true, others
	}
	return s
}

func sortPrefixes(ps []netip.Prefix) { slices.SortFunc(ps, comparePrefixes) }

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
