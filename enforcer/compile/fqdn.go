package compile

import (
	"net/netip"
	"slices"

	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// toFQDNs, as Cilium compiles it: every address a DNS answer gave for a
// name some toFQDNs selector selects becomes a host CIDR prefix, with its
// CIDR identity (labels cidr:<addr>/32 or /128 and reserved:world) and its
// ipcache entry, and a toFQDNs peer selects the CIDR identities of the
// addresses of the names it selects. Addresses of local endpoints and of
// the host keep their own identity (toFQDNs selects nothing in the
// cluster). The names are the node's (Input.Names): every endpoint's
// answers count, as Cilium collects them node-wide.

// fqdnIndex is which toFQDNs selectors select which addresses.
type fqdnIndex map[dnsmatch.Selector]map[netip.Addr]bool

// fqdnPrefixes matches in.Names against every toFQDNs selector of the
// policies, fills c.FQDNAddrs and c.fqdn, and returns the host prefixes
// that need CIDR identities.
func (c *Compiled) fqdnPrefixes(in Input) []netip.Prefix {
	c.fqdn = fqdnIndex{}
	c.FQDNAddrs = map[netip.Addr][]dnsmatch.Selector{}
	matchers := policy.FQDNMatchers(in.Policies)
	if len(matchers) == 0 {
		return nil
	}
	index := dnsmatch.NewIndex(matchers)
	c.fqdnSelectors = index
	if len(in.Names) == 0 {
		return nil
	}
	inCluster := map[netip.Addr]bool{}
	for _, ep := range in.Endpoints {
		for _, a := range ep.IPs {
			inCluster[a.Unmap()] = true
		}
	}
	for _, e := range in.IPCache {
		if HostPrefix(e.Prefix) {
			inCluster[e.Prefix.Addr().Unmap()] = true
		}
	}
	var out []netip.Prefix
	var selecting []*dnsmatch.Matcher
	for addr, names := range in.Names {
		addr = addr.Unmap()
		selecting = selecting[:0]
		for _, n := range names {
			selecting = index.Select(n, selecting)
		}
		if len(selecting) == 0 {
			continue
		}
		sels := make([]dnsmatch.Selector, 0, len(selecting))
		for _, m := range selecting {
			sels = append(sels, m.Selector())
		}
		slices.SortFunc(sels, compareSelectors)
		sels = slices.Compact(sels) // a selector selecting several of the names
		c.FQDNAddrs[addr] = sels
		if inCluster[addr] {
			continue
		}
		for _, s := range sels {
			if c.fqdn[s] == nil {
				c.fqdn[s] = map[netip.Addr]bool{}
			}
			c.fqdn[s][addr] = true
		}
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return out
}

// selectsFQDN reports whether a toFQDNs selector selects identity i: a
// host CIDR identity of an address of a name it selects.
func (c *Compiled) selectsFQDN(m *dnsmatch.Matcher, i identity.Identity) bool {
	addrs := c.fqdn[m.Selector()]
	if len(addrs) == 0 {
		return false
	}
	if c.fqdnHosts != nil {
		a, ok := c.fqdnHosts[i.ID]
		return ok && addrs[a]
	}
	return addrs[hostCIDR(i)]
}

// hostCIDR is the address of identity i's host CIDR label; the zero Addr
// when it has none.
func hostCIDR(i identity.Identity) netip.Addr {
	for _, l := range i.Labels {
		if p, ok := identity.CIDRPrefix(l); ok && HostPrefix(p) {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// indexFQDNHosts maps each identity of universe with a host CIDR label to
// its address, once, for selectsFQDN (which every toFQDNs peer asks of
// every identity); nothing when no toFQDNs selector selects an address.
func (c *Compiled) indexFQDNHosts(universe []identity.Identity) {
	if len(c.fqdn) == 0 {
		return
	}
	c.fqdnHosts = make(map[identity.ID]netip.Addr, len(universe))
	for _, i := range universe {
		if a := hostCIDR(i); a.IsValid() {
			c.fqdnHosts[i.ID] = a
		}
	}
}

// FQDNSelects reports whether the compiled toFQDNs selector sel selected
// addr (FQDNAddrs).
func (c *Compiled) FQDNSelects(addr netip.Addr, sel dnsmatch.Selector) bool {
	_, found := slices.BinarySearchFunc(c.FQDNAddrs[addr.Unmap()], sel, compareSelectors)
	return found
}

func compareSelectors(a, b dnsmatch.Selector) int {
	if a.MatchName != b.MatchName {
		if a.MatchName < b.MatchName {
			return -1
		}
		return 1
	}
	switch {
	case a.MatchPattern < b.MatchPattern:
		return -1
	case a.MatchPattern > b.MatchPattern:
		return 1
	}
	return 0
}
