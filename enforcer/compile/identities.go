package compile

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// identities builds the universe (reserved, given, local, CIDR) and the
// ipcache.
func (c *Compiled) identities(in Input) ([]identity.Identity, error) {
	byID := map[identity.ID]identity.Labels{}
	add := func(id identity.ID, l identity.Labels) error {
		if prev, ok := byID[id]; ok && prev.String() != l.String() {
			return fmt.Errorf("compile: identity %d has labels %s and %s", id, prev, l)
		}
		byID[id] = l
		return nil
	}
	for _, i := range identity.Reserved() {
		add(i.ID, i.Labels)
	}
	for _, i := range in.Identities {
		if err := add(i.ID, identity.NewLabels(i.Labels...)); err != nil {
			return nil, err
		}
	}
	for _, ep := range in.Endpoints {
		if ep.Host {
			// The host identity's labels are the host endpoint's: reserved:host
			// and the node's labels, as Cilium gives identity 1.
			if ep.Identity != uint32(identity.Host) {
				return nil, fmt.Errorf("compile: host endpoint %d has identity %d, want %d", ep.ID, ep.Identity, identity.Host)
			}
			byID[identity.Host] = identity.NewLabels(ep.Labels...)
			continue
		}
		l := ep.Labels
		if ep.Namespace != "" {
			l = append(append([]string(nil), l...), "k8s:"+policy.NamespaceLabel+"="+ep.Namespace)
		}
		if err := add(identity.ID(ep.Identity), identity.NewLabels(l...)); err != nil {
			return nil, err
		}
	}
	var prefixes []netip.Prefix
	for _, p := range in.Policies {
		for _, r := range p.Rules {
			for _, d := range []*policy.DirectionRules{&r.Ingress, &r.Egress} {
				for _, pr := range append(append([]policy.PeerRule(nil), d.Allow...), d.Deny...) {
					for _, ps := range pr.Peers {
						if ps.CIDR.IsValid() {
							prefixes = append(prefixes, ps.CIDR)
							prefixes = append(prefixes, ps.Except...)
						}
					}
				}
			}
		}
	}
	prefixes = append(prefixes, c.fqdnPrefixes(in)...)
	for p, id := range identity.LocalCIDRIdentities(prefixes) {
		if err := add(id, identity.CIDRLabels(p)); err != nil {
			return nil, err
		}
		c.IPCache[p] = uint32(id)
	}
	for _, e := range in.IPCache {
		c.IPCache[e.Prefix.Masked()] = e.Identity
	}
	for _, ep := range in.Endpoints {
		for _, a := range ep.IPs {
			a = a.Unmap()
			c.IPCache[netip.PrefixFrom(a, a.BitLen())] = ep.Identity
		}
	}
	out := make([]identity.Identity, 0, len(byID))
	for id, l := range byID {
		out = append(out, identity.Identity{ID: id, Labels: l})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	c.Identities = out
	return out, nil
}

// selectsIdentity reports whether a peer selector selects an identity:
// label selectors by labels, CIDR selectors by the identity's cidr: label
// (its prefix must lie inside CIDR and inside no except; with every policy
// prefix in the ipcache this equals matching the address itself), toFQDNs
// selectors by the addresses of their names (fqdn.go).
func (c *Compiled) selectsIdentity(ps *policy.PeerSelector, i identity.Identity) bool {
	switch {
	case ps.FQDN != nil:
		return c.selectsFQDN(ps.FQDN, i)
	case ps.All:
		return true
	case ps.Selector != nil:
		return ps.Selector.Matches(i.Labels)
	case ps.CIDR.IsValid():
		for _, l := range i.Labels {
			p, ok := identity.CIDRPrefix(l)
			if !ok || !within(p, ps.CIDR) {
				continue
			}
			for _, e := range ps.Except {
				if within(p, e) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// within reports whether prefix p lies inside prefix outer.
func within(p, outer netip.Prefix) bool {
	return p.Addr().BitLen() == outer.Addr().BitLen() && outer.Bits() <= p.Bits() && outer.Contains(p.Addr())
}
