package compile

import (
	"sort"
	"strings"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

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
	id   policy.ID
}

// compileDirection compiles the rules of pols that select local in dir
// against universe into c.Policy; it reports whether dir is default deny.
func (c *Compiled) compileDirection(pols []*policy.Policy, local policy.Endpoint, dir policy.Direction,
	universe []identity.Identity, sets map[string]uint32) bool {
	atoms, dd := c.directionAtoms(rulesSelecting(pols, local), dir, universe, c.Revisions)
	for id, s := range spaces(atoms) {
		c.materialise(local.ID, dir, id, s, atoms, sets, c.Policy)
	}
	return dd
}

// selectedRule is a rule of a policy that selects an endpoint.
type selectedRule struct {
	pol  *policy.Policy
	rule *policy.Rule
}

// rulesSelecting is the rules of pols that select local, in order.
func rulesSelecting(pols []*policy.Policy, local policy.Endpoint) []selectedRule {
	var out []selectedRule
	for _, pol := range pols {
		for i := range pol.Rules {
			if pol.Rules[i].SelectsEndpoint(local) {
				out = append(out, selectedRule{pol, &pol.Rules[i]})
			}
		}
	}
	return out
}

// directionAtoms is every rule's contribution to dir: peers (the
// identities of universe they select, or all) × port prefixes; an allow or
// deny that selects no identity of universe contributes nothing. It
// records the revisions of the policies met in revisions (nil: none), and
// reports whether dir is default deny.
func (c *Compiled) directionAtoms(rules []selectedRule, dir policy.Direction,
	universe []identity.Identity, revisions map[policy.ID]uint64) ([]atom, bool) {
	dd := false
	var atoms []atom
	for _, sr := range rules {
		pol, r := sr.pol, sr.rule
		d := r.Dir(dir)
		dd = dd || d.DefaultDeny
		for _, group := range []struct {
			rules []policy.PeerRule
			deny  bool
		}{{d.Allow, false}, {d.Deny, true}} {
			for _, pr := range group.rules {
				a := atom{deny: group.deny, id: pol.ID(), ids: map[uint32]bool{}}
				if revisions != nil {
					revisions[a.id] = pol.Revision
				}
				for j := range pr.Peers {
					a.all = a.all || pr.Peers[j].All
				}
				if !a.all {
					for _, id := range universe {
						for j := range pr.Peers {
							if c.selectsIdentity(&pr.Peers[j], id) {
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
	return atoms, dd
}

// spaces is the prefix set of each identity space the atoms make: an
// identity that has entries of its own gets every prefix of identity 0
// too, so its probes never hide a more specific or a denying identity-0
// entry.
func spaces(atoms []atom) map[uint32]map[portPrefix]bool {
	out := map[uint32]map[portPrefix]bool{}
	addTo := func(id uint32, p portPrefix) {
		if out[id] == nil {
			out[id] = map[portPrefix]bool{}
		}
		out[id][p] = true
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
	for id, s := range out {
		if id == 0 {
			continue
		}
		for p := range out[0] {
			s[p] = true
		}
	}
	return out
}

// materialise writes into policy the entries of identity id's space (its
// prefixes) of endpoint ep in dir: at each prefix, deny if a covering
// atom denies, else allow, with the policies of the deciding atoms.
func (c *Compiled) materialise(ep uint32, dir policy.Direction, id uint32, space map[portPrefix]bool, atoms []atom,
	sets map[string]uint32, policyMap map[Key]Value) {
	for p := range space {
		allow, deny := map[policy.ID]bool{}, map[policy.ID]bool{}
		for _, a := range atoms {
			if !(a.all || id != 0 && a.ids[id]) || !a.pfx.contains(p) {
				continue
			}
			if a.deny {
				deny[a.id] = true
			} else {
				allow[a.id] = true
			}
		}
		v := Value{Action: Allow, PolicySet: c.intern(allow, sets)}
		if len(deny) > 0 {
			v = Value{Action: Deny, PolicySet: c.intern(deny, sets)}
		}
		policyMap[Key{Endpoint: ep, Identity: id, Direction: uint8(dir), Proto: p.proto, Port: p.port, PortBits: p.bits}] = v
	}
}

func (c *Compiled) intern(ids map[policy.ID]bool, sets map[string]uint32) uint32 {
	list := make([]policy.ID, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Less(list[j]) })
	key := setKey(list)
	if i, ok := sets[key]; ok {
		return i
	}
	i := uint32(len(c.PolicySets))
	sets[key] = i
	c.PolicySets = append(c.PolicySets, list)
	return i
}

// setKey is the key intern files a sorted policy set under.
func setKey(list []policy.ID) string {
	var key strings.Builder
	for _, id := range list {
		key.WriteString(string(id.Kind) + "\x00" + id.Namespace + "\x00" + id.Name + "\x00")
	}
	return key.String()
}
