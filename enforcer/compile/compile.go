// Package compile turns parsed policies and the known identities into the
// kernel's form: policy maps (an exact-match hash and a port-range LPM
// trie), an enforcement map and an ipcache (a host hash and an LPM trie),
// plus the userspace table of deciding-policy names. It owns the layout and
// the lookup order the BPF program must implement, and (*Compiled).Lookup
// implements that order in Go so tests can hold the maps against
// policy.Evaluate. It does no I/O and does not touch BPF maps.
//
// # Kernel layout (bpf/flow.h; all structs free of holes)
//
//	struct policy_key {            // keys both policy maps (below)
//		__u32 prefixlen;           // host order: 72 + (proto ? 8 + port_bits : 0)
//		__be32 endpoint_id;        // local endpoint (host-side ifindex)
//		__be32 identity;           // remote identity; 0 = any identity
//		__u8  direction;           // 1 ingress, 2 egress (api.TrafficDirection)
//		__u8  proto;               // IPPROTO_*; 0 = any protocol (and port)
//		__be16 dport;              // destination port; ICMP/ICMPv6: the type
//	};                             // 16 bytes
//	struct policy_value {
//		__u32 policy_set;          // index into the userspace name-set table
//		__u8  action;              // 1 allow, 2 deny
//		__u8  pad[3];
//	};                             // 8 bytes
//	struct policy_enforce {        // HASH, key __u32 endpoint_id (host order)
//		__u8 ingress, egress;      // 1: default deny in that direction
//		__u8 audit;                // 1: report AUDIT, never drop
//		__u8 flags;                // ProbeFlags: which probes can hit
//	};
//	struct ipcache_key {           // keys both ipcache maps (below)
//		__u32 prefixlen;           // host order: 32 + address prefix bits
//		__u8  family;              // 4 or 6
//		__u8  pad[3];
//		__u8  addr[16];            // IPv4 in the first 4 bytes (as flow_key)
//	};                             // value: __u32 identity (host order)
//
// Where an entry goes (Key.InRangeTrie, HostPrefix):
//
//   - policy (HASH): keys of one port (prefixlen 96), of every port of a
//     protocol (80) and of every protocol (72). The prefixlen is part of the
//     hashed key: "port 0" and "any port" are different keys.
//   - policy_range (LPM_TRIE): port ranges that are not a single port, split
//     into aligned power-of-two blocks, each one entry whose prefix covers
//     the block's fixed high bits (Cilium's scheme): 1-65535 costs 15
//     entries here and one "any port" entry in the hash, never 65535.
//   - ipcache (HASH): host entries (/32, /128): every endpoint IP and every
//     host CIDR peer, prefixlen always the full length.
//   - ipcache_lpm (LPM_TRIE): shorter prefixes.
//
// The datapath serves the single-port keys (prefixlen 96) from policy_fast,
// an array of one-cache-line buckets (bpf/flow.h), and keeps in the policy
// hash only those a full bucket cannot hold; it also caches there, per host
// peer (an ipcache hash entry), the answer of probe 2a for the peer's
// identity, keyed by the peer's address. Both are placements of the same
// entries: the answers of the lookup order below do not change.
//
// # Lookup order (the BPF program must do exactly this, at connection start)
//
//  1. remote identity: the ipcache hash on the peer address; on a miss the
//     ipcache_lpm trie (only with FlagIPCacheLPM); a miss is world (2).
//  2. with identity = the remote identity (only if it is not 0 and with
//     FlagByIdentity), then on a miss with identity 0 (only with
//     FlagAnyIdentity), probe in this order, the first hit deciding:
//     a. hash {endpoint, identity, dir, proto, port} (prefixlen 96);
//     b. policy_range LPM on the same key (only with FlagRanges);
//     c. hash {endpoint, identity, dir, proto, any port} (prefixlen 80,
//     only with FlagAnyPort);
//     d. hash {endpoint, identity, dir, any protocol} (prefixlen 72, only
//     with FlagAnyProto).
//     (a-c only for a non-zero protocol.) The flags are the endpoint's
//     (policy_enforce.flags, Compiled.Flags): a skipped probe is one that
//     cannot hit, so the skips change the cost, never the answer.
//  3. a hit decides: action deny drops (DROP_POLICY_DENY, 181), allow
//     passes; value.policy_set names the deciding policies.
//  4. no hit: drop (DROP_POLICY, 133) if policy_enforce[endpoint] says
//     default deny for dir, else pass (not selected).
//
// The probes of one identity find the longest prefix containing the flow
// (a single port is longer than any range block, a range block longer than
// "any port", which is longer than "any protocol"), so they equal one LPM
// over every entry of that identity. Deny wins at every specificity because
// the compiler materialises it: the value stored at each prefix is computed
// from every rule covering that prefix (deny if any covering rule denies),
// every prefix of identity 0 is copied into the space of each identity that
// has entries of its own (so the identity's probes never hide a more
// specific or a denying identity-0 entry), and a deny narrower than an
// allow is its own, longer, entry. Policy-name sets are materialised the
// same way, so the first hit carries every policy that allows (or denies)
// the flow.
//
// Identities unknown at compile time only match identity-0 entries:
// recompile when identities appear (as Cilium's selector cache does).
package compile

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Endpoint is a local endpoint to compile policy for.
type Endpoint struct {
	ID        uint32 // endpoint id (host-side ifindex)
	Identity  uint32
	Namespace string
	Labels    []string
	IPs       []netip.Addr
}

// IPEntry maps a prefix to an identity in the ipcache (remote endpoints,
// host and node addresses).
type IPEntry struct {
	Prefix   netip.Prefix
	Identity uint32
}

// Input is everything the compiler needs.
type Input struct {
	Policies []*policy.Policy
	// Endpoints are the local endpoints; each gets policy entries and its
	// IPs go into the ipcache.
	Endpoints []Endpoint
	// Identities are the known identities (remote endpoints too); reserved
	// identities and the local endpoints' identities are added.
	Identities []identity.Identity
	// IPCache holds extra address → identity entries.
	IPCache []IPEntry
}

// Action is a policy map entry's action.
type Action uint8

// Actions.
const (
	Allow Action = 1
	Deny  Action = 2
)

// Key is a policy map key. PortBits is how many leading bits of Port the
// entry matches (0..16); with Proto 0 the entry matches every protocol and
// port and Port, PortBits are 0.
type Key struct {
	Endpoint  uint32
	Identity  uint32
	Direction uint8
	Proto     uint8
	Port      uint16
	PortBits  uint8
}

// PrefixLen is the LPM prefix length of the key in bits.
func (k Key) PrefixLen() uint32 {
	if k.Proto == 0 {
		return 72
	}
	return 80 + uint32(k.PortBits)
}

// InRangeTrie reports whether the entry belongs in the policy_range LPM trie
// (a port range that is not a single port); every other key is an exact key
// of the policy hash.
func (k Key) InRangeTrie() bool {
	return k.Proto != 0 && k.PortBits > 0 && k.PortBits < 16
}

// HostPrefix reports whether an ipcache prefix is a host entry (/32, /128,
// IPv4-mapped /128 included) of the ipcache hash; shorter ones belong in
// the ipcache_lpm trie.
func HostPrefix(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == p.Addr().BitLen()
}

// MarshalBinary encodes struct policy_key (for both policy maps).
func (k Key) MarshalBinary() ([]byte, error) {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], k.PrefixLen())
	binary.BigEndian.PutUint32(b[4:], k.Endpoint)
	binary.BigEndian.PutUint32(b[8:], k.Identity)
	b[12], b[13] = k.Direction, k.Proto
	binary.BigEndian.PutUint16(b[14:], k.Port)
	return b, nil
}

// Value is a policy map value.
type Value struct {
	Action    Action
	PolicySet uint32
}

// MarshalBinary encodes struct policy_value.
func (v Value) MarshalBinary() ([]byte, error) {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b[0:], v.PolicySet)
	b[4] = byte(v.Action)
	return b, nil
}

// ProbeFlags say which probes of the lookup order can hit for an endpoint
// (struct policy_enforce.flags); the program skips the others.
type ProbeFlags uint8

// Probe flags; values equal bpf/flow.h's enum policy_enforce_flag.
const (
	FlagIPCacheLPM  ProbeFlags = 1 << iota // the ipcache trie has entries (same for every endpoint)
	FlagRanges                             // policy_range has entries of the endpoint
	FlagAnyPort                            // hash keys of every port of a protocol
	FlagAnyProto                           // hash keys of every protocol
	FlagByIdentity                         // keys of a non-zero identity
	FlagAnyIdentity                        // keys of identity 0
)

// Enforcement says whether an endpoint is in default deny per direction.
type Enforcement struct {
	Ingress, Egress bool
}

// Compiled is the kernel's form of a policy set.
type Compiled struct {
	// Policy is the policy map.
	Policy map[Key]Value
	// Enforce is the enforcement map, by endpoint id.
	Enforce map[uint32]Enforcement
	// PolicySets are the deciding-policy name sets; Value.PolicySet indexes
	// it and set 0 is empty.
	PolicySets [][]string
	// IPCache maps prefixes to identities; a miss is world.
	IPCache map[netip.Prefix]uint32
	// Identities are all identities compiled against, CIDR ones included.
	Identities []identity.Identity
	// Flags are the probe flags, by endpoint id (every endpoint of Enforce).
	Flags map[uint32]ProbeFlags
	// LocalIngress maps the addresses of the local endpoints whose ingress
	// some policy judges (default deny, or entries of that direction) to
	// their endpoint ids: a connection a local pod starts towards one of
	// them may be judged by that endpoint's ingress policy already at the
	// source's hook, as Cilium does for local delivery, so a denied packet
	// is dropped before it crosses the node. Placement only: the verdict is
	// the destination's own.
	LocalIngress map[netip.Addr]uint32
}

// portPrefix is the (proto, port prefix) part of a key.
type portPrefix struct {
	proto uint8
	port  uint16
	bits  uint8
}

func (a portPrefix) contains(b portPrefix) bool {
	if a.proto == 0 {
		return true
	}
	return a.proto == b.proto && b.bits >= a.bits && b.port&portMask(a.bits) == a.port
}

func portMask(bits uint8) uint16 {
	if bits == 0 {
		return 0
	}
	return ^uint16(0) << (16 - bits)
}

// rangePrefixes splits lo..hi into aligned power-of-two blocks.
func rangePrefixes(proto uint8, lo, hi uint16) []portPrefix {
	var out []portPrefix
	for l := uint32(lo); l <= uint32(hi); {
		k := uint8(0)
		for k < 16 && l%(1<<(k+1)) == 0 && l+(1<<(k+1))-1 <= uint32(hi) {
			k++
		}
		out = append(out, portPrefix{proto: proto, port: uint16(l), bits: 16 - k})
		l += 1 << k
	}
	return out
}

// atom is one rule's contribution: peers × one port prefix.
type atom struct {
	all  bool
	ids  map[uint32]bool
	pfx  portPrefix
	deny bool
	name string
}

// Compile compiles in.
func Compile(in Input) (*Compiled, error) {
	c := &Compiled{
		Policy:     make(map[Key]Value),
		Enforce:    make(map[uint32]Enforcement),
		PolicySets: [][]string{nil},
		IPCache:    make(map[netip.Prefix]uint32),
	}
	universe, err := c.identities(in)
	if err != nil {
		return nil, err
	}
	sets := map[string]uint32{"": 0}
	seenEP := map[uint32]bool{}
	for _, ep := range in.Endpoints {
		if seenEP[ep.ID] {
			return nil, fmt.Errorf("compile: endpoint id %d twice", ep.ID)
		}
		seenEP[ep.ID] = true
		local := policy.Endpoint{ID: ep.ID, Namespace: ep.Namespace, Labels: ep.Labels}
		var enf Enforcement
		for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
			dd := c.compileDirection(in.Policies, local, dir, universe, sets)
			if dir == policy.Ingress {
				enf.Ingress = dd
			} else {
				enf.Egress = dd
			}
		}
		c.Enforce[ep.ID] = enf
	}
	c.Flags = c.probeFlags()
	c.LocalIngress = c.localIngress(in.Endpoints)
	return c, nil
}

// localIngress lists the addresses of the endpoints whose ingress is judged.
func (c *Compiled) localIngress(eps []Endpoint) map[netip.Addr]uint32 {
	judged := map[uint32]bool{}
	for ep, e := range c.Enforce {
		if e.Ingress {
			judged[ep] = true
		}
	}
	for k := range c.Policy {
		if k.Direction == uint8(policy.Ingress) {
			judged[k.Endpoint] = true
		}
	}
	out := map[netip.Addr]uint32{}
	for _, ep := range eps {
		if !judged[ep.ID] {
			continue
		}
		for _, a := range ep.IPs {
			out[a.Unmap()] = ep.ID
		}
	}
	return out
}

// probeFlags derives every endpoint's probe flags from the entries.
func (c *Compiled) probeFlags() map[uint32]ProbeFlags {
	var base ProbeFlags
	for p := range c.IPCache {
		if !HostPrefix(p) {
			base = FlagIPCacheLPM
			break
		}
	}
	out := make(map[uint32]ProbeFlags, len(c.Enforce))
	for ep := range c.Enforce {
		out[ep] = base
	}
	for k := range c.Policy {
		f := out[k.Endpoint] | base
		switch {
		case k.InRangeTrie():
			f |= FlagRanges
		case k.Proto == 0:
			f |= FlagAnyProto
		case k.PortBits == 0:
			f |= FlagAnyPort
		}
		if k.Identity == 0 {
			f |= FlagAnyIdentity
		} else {
			f |= FlagByIdentity
		}
		out[k.Endpoint] = f
	}
	return out
}

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
// prefix in the ipcache this equals matching the address itself).
func selectsIdentity(ps *policy.PeerSelector, i identity.Identity) bool {
	switch {
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

func (c *Compiled) compileDirection(pols []*policy.Policy, local policy.Endpoint, dir policy.Direction,
	universe []identity.Identity, sets map[string]uint32) bool {
	dd := false
	var atoms []atom
	for _, pol := range pols {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.SelectsEndpoint(local) {
				continue
			}
			d := r.Dir(dir)
			dd = dd || d.DefaultDeny
			for _, group := range []struct {
				rules []policy.PeerRule
				deny  bool
			}{{d.Allow, false}, {d.Deny, true}} {
				for _, pr := range group.rules {
					a := atom{deny: group.deny, name: pol.Ref(), ids: map[uint32]bool{}}
					for j := range pr.Peers {
						a.all = a.all || pr.Peers[j].All
					}
					if !a.all {
						for _, id := range universe {
							for j := range pr.Peers {
								if selectsIdentity(&pr.Peers[j], id) {
									a.ids[uint32(id.ID)] = true
								}
							}
						}
						if len(a.ids) == 0 {
							continue
						}
					}
					var pfxs []portPrefix
					if len(pr.Ports) == 0 {
						pfxs = []portPrefix{{}}
					}
					for _, pt := range pr.Ports {
						pfxs = append(pfxs, rangePrefixes(pt.Proto, pt.Lo, pt.Hi)...)
					}
					for _, p := range pfxs {
						a.pfx = p
						atoms = append(atoms, a)
					}
				}
			}
		}
	}
	// Prefix sets per identity space.
	spaces := map[uint32]map[portPrefix]bool{}
	addTo := func(id uint32, p portPrefix) {
		if spaces[id] == nil {
			spaces[id] = map[portPrefix]bool{}
		}
		spaces[id][p] = true
	}
	for _, a := range atoms {
		if a.all {
			addTo(0, a.pfx)
			continue
		}
		for id := range a.ids {
			addTo(id, a.pfx)
		}
	}
	for id, s := range spaces {
		if id == 0 {
			continue
		}
		for p := range spaces[0] {
			s[p] = true
		}
	}
	for id, s := range spaces {
		for p := range s {
			allow, deny := map[string]bool{}, map[string]bool{}
			for _, a := range atoms {
				if !(a.all || id != 0 && a.ids[id]) || !a.pfx.contains(p) {
					continue
				}
				if a.deny {
					deny[a.name] = true
				} else {
					allow[a.name] = true
				}
			}
			v := Value{Action: Allow, PolicySet: c.intern(allow, sets)}
			if len(deny) > 0 {
				v = Value{Action: Deny, PolicySet: c.intern(deny, sets)}
			}
			c.Policy[Key{Endpoint: local.ID, Identity: id, Direction: uint8(dir), Proto: p.proto, Port: p.port, PortBits: p.bits}] = v
		}
	}
	return dd
}

func (c *Compiled) intern(names map[string]bool, sets map[string]uint32) uint32 {
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	key := strings.Join(list, "\x00")
	if i, ok := sets[key]; ok {
		return i
	}
	i := uint32(len(c.PolicySets))
	sets[key] = i
	c.PolicySets = append(c.PolicySets, list)
	return i
}
