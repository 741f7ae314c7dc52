package compile

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Admitting a DNS answer's new addresses without compiling everything
// again, as Cilium's selector cache does: each new address gets the host
// CIDR identity and the ipcache entry a full compile would give it, and
// every (endpoint, direction) gets the entries of that identity's space,
// computed by the same atoms and materialisation as Compile's, from the
// rules that select it. Nothing else changes: the other identities'
// entries depend on their own selections and on identity 0's, which a new
// CIDR identity changes neither. Whatever Admit cannot prove equal to a
// full compile is ErrRecompile, with the reason.

// ErrRecompile is wrapped by Admit's errors when only a full compile can
// admit the addresses; the error says why.
var ErrRecompile = errors.New("needs a full compile")

// Delta is what Admit adds to the policy it extends: entries only, none
// removed or changed, so the policy in force can take them one by one
// (each is new: before it, a lookup meets what it met before).
type Delta struct {
	// Base is the policy the delta extends.
	Base *Compiled
	// IPCache are the new host entries (the new CIDR identities).
	IPCache map[netip.Prefix]uint32
	// Policy are the new policy entries, all of new identities.
	Policy map[Key]Value
	// Flags are the endpoints whose probe flags the new entries extend,
	// with their flags now.
	Flags map[uint32]ProbeFlags
	// DNS says the DNS proxy's rules changed (new server identities):
	// its table must take the result's.
	DNS bool
	// FirstSet is the index of the first new policy set (PolicySets of
	// the result from there on are new); len(Base.PolicySets) when none.
	FirstSet int
}

// Empty reports whether the delta adds nothing to the kernel's maps nor
// to the DNS rules.
func (d *Delta) Empty() bool {
	return len(d.IPCache) == 0 && len(d.Policy) == 0 && len(d.Flags) == 0 && !d.DNS
}

// Admit returns the policy Compile would make of c's input with names
// (every name the DNS cache holds for each of some addresses: those of an
// answer) added to the names c was compiled with, and the delta from c to
// it. c is not modified. An address whose selectors are those c has
// already adds nothing. It fails with ErrRecompile when the result is not
// an extension of c by new entries alone (the reasons below), and then a
// full compile must admit the names.
func (c *Compiled) Admit(names map[netip.Addr][]string) (*Compiled, *Delta, error) {
	if !c.compiled {
		return nil, nil, fmt.Errorf("%w: the policy in force was not made by Compile", ErrRecompile)
	}
	if len(c.L7) > 0 {
		// The L7 proxy's peer groups partition every address by its
		// identity: a new CIDR identity moves its address out of world's
		// group, which only a full apply tells the proxy.
		return nil, nil, fmt.Errorf("%w: L7 rules group peers by identity", ErrRecompile)
	}
	d := &Delta{Base: c, IPCache: map[netip.Prefix]uint32{}, Policy: map[Key]Value{}, Flags: map[uint32]ProbeFlags{},
		FirstSet: len(c.PolicySets)}
	added, err := c.newAddresses(names)
	if err != nil {
		return nil, nil, err
	}
	if len(added) == 0 {
		return c, d, nil
	}
	next := *c
	next.FQDNAddrs = maps.Clone(c.FQDNAddrs)
	// Compile's index of what toFQDNs selected, read while it compiles
	// only: what the result selects is FQDNAddrs.
	next.fqdn, next.fqdnHosts = nil, nil
	// The new identities are judged by a scratch Compiled that knows them
	// alone: atoms then list only new identities, and a new identity's
	// space depends on nothing else.
	scratch := &Compiled{fqdn: fqdnIndex{}, fqdnHosts: map[identity.ID]netip.Addr{}}
	var universe []identity.Identity
	for _, a := range added {
		next.FQDNAddrs[a.addr] = a.selectors
		if a.id == 0 {
			continue // a local endpoint's or the host's: its identity stays
		}
		p := netip.PrefixFrom(a.addr, a.addr.BitLen())
		d.IPCache[p] = uint32(a.id)
		universe = append(universe, identity.Identity{ID: a.id, Labels: identity.CIDRLabels(p)})
		scratch.fqdnHosts[a.id] = a.addr
		for _, s := range a.selectors {
			if scratch.fqdn[s] == nil {
				scratch.fqdn[s] = map[netip.Addr]bool{}
			}
			scratch.fqdn[s][a.addr] = true
		}
	}
	if len(universe) == 0 {
		return &next, d, nil
	}
	if err := c.admitEntries(scratch, universe, d); err != nil {
		return nil, nil, err
	}
	d.DNS = c.admitDNS(&next, scratch, universe)
	next.IPCache = maps.Clone(c.IPCache)
	maps.Copy(next.IPCache, d.IPCache)
	next.Identities = slices.Concat(c.Identities, universe)
	slices.SortFunc(next.Identities, func(a, b identity.Identity) int { return int(a.ID) - int(b.ID) })
	next.Policy = maps.Clone(c.Policy)
	maps.Copy(next.Policy, d.Policy)
	if len(d.Flags) > 0 {
		next.Flags = maps.Clone(c.Flags)
		maps.Copy(next.Flags, d.Flags)
	}
	next.PolicySets = slices.Concat(c.PolicySets, scratch.PolicySets)
	if next.DNS.IdentityOf != nil {
		next.DNS.IdentityOf = next.IdentityOf // the new ipcache's
	}
	return &next, d, nil
}

// admitted is one address Admit adds.
type admitted struct {
	addr      netip.Addr
	selectors []dnsmatch.Selector // sorted
	id        identity.ID         // its new CIDR identity; 0: in the cluster, none
}

// newAddresses is the addresses of names some toFQDNs selector selects
// that c's do not: each with its selectors and the identity a full
// compile would give it.
func (c *Compiled) newAddresses(names map[netip.Addr][]string) ([]admitted, error) {
	if c.fqdnSelectors == nil {
		return nil, nil
	}
	addrs := slices.SortedFunc(maps.Keys(names), netip.Addr.Compare)
	var inCluster map[netip.Addr]bool
	taken := map[identity.ID]bool{}
	var out []admitted
	var selecting []*dnsmatch.Matcher
	for _, addr := range addrs {
		selecting = selecting[:0]
		for _, n := range names[addr] {
			selecting = c.fqdnSelectors.Select(n, selecting)
		}
		addr = addr.Unmap()
		var sels []dnsmatch.Selector
		for _, m := range selecting {
			sels = append(sels, m.Selector())
		}
		slices.SortFunc(sels, compareSelectors)
		sels = slices.Compact(sels)
		if old, ok := c.FQDNAddrs[addr]; ok {
			if slices.Equal(old, sels) {
				continue
			}
			// Its identity has entries already, which other selectors
			// would change (or an expiry not refreshed yet would remove):
			// a change, not an addition.
			return nil, fmt.Errorf("%w: %s is selected already, by other selectors", ErrRecompile, addr)
		}
		if len(sels) == 0 {
			continue
		}
		if inCluster == nil {
			inCluster = c.inCluster()
		}
		if inCluster[addr] {
			out = append(out, admitted{addr: addr, selectors: sels})
			continue
		}
		p := netip.PrefixFrom(addr, addr.BitLen())
		if _, ok := c.IPCache[p]; ok {
			// A toCIDR /32 gave it an identity that other rules select
			// already.
			return nil, fmt.Errorf("%w: %s has an identity already", ErrRecompile, p)
		}
		id := identity.FirstLocalCIDRIdentity(p)
		if _, found := slices.BinarySearchFunc(c.Identities, id, func(i identity.Identity, id identity.ID) int {
			return int(i.ID) - int(id)
		}); found || taken[id] {
			// Another prefix holds the identity the address would be
			// given first: which of them gets it depends on their order,
			// so the other may have to move.
			return nil, fmt.Errorf("%w: the identity of %s (%d) collides with another", ErrRecompile, p, id)
		}
		taken[id] = true
		out = append(out, admitted{addr: addr, selectors: sels, id: id})
	}
	return out, nil
}

// inCluster is the addresses toFQDNs gives no CIDR identity: local
// endpoints', and the host entries of the input's ipcache.
func (c *Compiled) inCluster() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, ep := range c.in.Endpoints {
		for _, a := range ep.IPs {
			out[a.Unmap()] = true
		}
	}
	for _, e := range c.in.IPCache {
		if HostPrefix(e.Prefix) {
			out[e.Prefix.Addr().Unmap()] = true
		}
	}
	return out
}

// admitEntries fills d with the entries of the new identities (universe,
// as scratch selects them) of every endpoint and direction, and the probe
// flags they extend; scratch interns new policy sets after c's.
func (c *Compiled) admitEntries(scratch *Compiled, universe []identity.Identity, d *Delta) error {
	sets := make(map[string]uint32, len(c.PolicySets))
	for i, s := range c.PolicySets {
		sets[setKey(s)] = uint32(i)
	}
	// scratch.intern appends to its PolicySets: start them where c's end.
	scratch.PolicySets = make([][]policy.ID, len(c.PolicySets), len(c.PolicySets)+4)
	selecting := c.selecting.of(c.in)
	for _, ep := range c.in.Endpoints {
		for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
			atoms, _ := scratch.directionAtoms(selecting[ep.ID], dir, universe, nil)
			mine := false
			for _, a := range atoms {
				if !a.all {
					mine = true
				}
			}
			if !mine {
				continue // no rule selects a new identity: its lookups meet identity 0's
			}
			for _, a := range atoms {
				if a.deny {
					// Deny wins at every prefix it covers, so a deny is
					// where an entry computed wrong would pass what must
					// not pass; such rules are rare beside toFQDNs, and
					// Compile stays the only one that writes them.
					return fmt.Errorf("%w: a deny rule applies to endpoint %d's %s", ErrRecompile, ep.ID, dir)
				}
			}
			if err := c.admitsEndpoint(ep, dir); err != nil {
				return err
			}
			for id, space := range spaces(atoms) {
				if id == 0 {
					continue // identity 0's entries are c's already
				}
				scratch.materialise(ep.ID, dir, id, space, atoms, sets, d.Policy)
			}
		}
	}
	for k := range d.Policy {
		if _, ok := c.Policy[k]; ok {
			return fmt.Errorf("%w: entry %+v exists already", ErrRecompile, k)
		}
		f := c.Flags[k.Endpoint]
		if prev, ok := d.Flags[k.Endpoint]; ok {
			f = prev
		}
		if g := f | k.probeFlags(); g != c.Flags[k.Endpoint] {
			d.Flags[k.Endpoint] = g
		}
	}
	scratch.PolicySets = scratch.PolicySets[len(c.PolicySets):]
	return nil
}

// admitsEndpoint refuses an endpoint whose entries in dir would change
// more than its new identities' entries: one the kernel does not select
// yet (its enforcement entry would appear), or whose ingress is not
// judged yet (its addresses would join LocalIngress).
func (c *Compiled) admitsEndpoint(ep Endpoint, dir policy.Direction) error {
	e := c.Enforce[ep.ID]
	if !e.Ingress && !e.Egress && c.Flags[ep.ID]&(FlagByIdentity|FlagAnyIdentity) == 0 {
		return fmt.Errorf("%w: endpoint %d has no policy in force yet", ErrRecompile, ep.ID)
	}
	if dir != policy.Ingress || ep.Host || len(ep.IPs) == 0 {
		return nil
	}
	if c.LocalIngress[ep.IPs[0].Unmap()] != ep.ID {
		return fmt.Errorf("%w: endpoint %d's ingress is not judged yet", ErrRecompile, ep.ID)
	}
	return nil
}

// admitDNS gives next the DNS proxy's rules with the new identities
// (universe, as scratch selects them) among the server identities of the
// rules whose peers select them, as compileDNS would list them: an allow
// that made no rule before (its peers selected no identity) makes one now,
// in its place. It reports whether a rule changed.
func (c *Compiled) admitDNS(next, scratch *Compiled, universe []identity.Identity) bool {
	changed := false
	for ep, cands := range c.dnsCandidates {
		var rules []dnsmatch.Rule
		var again []dnsCandidate
		for i, cand := range cands {
			added, ok := scratch.dnsRule(cand.ref, cand.peers, cand.proto, cand.port, universe)
			if !ok || len(added.ServerIdentities) == 0 {
				if again != nil {
					again[i].rule = -1
					if cand.rule >= 0 {
						again[i].rule = len(rules)
						rules = append(rules, c.DNS.ByEndpoint[ep][cand.rule])
					}
				}
				continue
			}
			if again == nil { // the first change of ep: its rules so far as they were
				again = slices.Clone(cands)
				for _, prev := range cands[:i] {
					if prev.rule >= 0 {
						rules = append(rules, c.DNS.ByEndpoint[ep][prev.rule])
					}
				}
			}
			r := added
			if cand.rule >= 0 {
				r = c.DNS.ByEndpoint[ep][cand.rule]
				r.ServerIdentities = slices.Concat(r.ServerIdentities, added.ServerIdentities)
			}
			slices.Sort(r.ServerIdentities) // compileDNS lists them by identity
			again[i].rule = len(rules)
			rules = append(rules, r)
		}
		if again == nil {
			continue
		}
		if !changed {
			next.DNS.ByEndpoint = maps.Clone(c.DNS.ByEndpoint)
			next.dnsCandidates = maps.Clone(c.dnsCandidates)
			changed = true
		}
		next.DNS.ByEndpoint[ep], next.dnsCandidates[ep] = rules, again
	}
	return changed
}

// endpointRules is, per endpoint id, the rules that select it.
type endpointRules struct {
	once       sync.Once
	byEndpoint map[uint32][]selectedRule
}

// of is the rules of in's policies that select each of in's endpoints.
func (e *endpointRules) of(in Input) map[uint32][]selectedRule {
	e.once.Do(func() {
		e.byEndpoint = make(map[uint32][]selectedRule, len(in.Endpoints))
		for _, ep := range in.Endpoints {
			e.byEndpoint[ep.ID] = rulesSelecting(in.Policies, policy.Endpoint{ID: ep.ID, Namespace: ep.Namespace, Labels: ep.Labels})
		}
	})
	return e.byEndpoint
}
