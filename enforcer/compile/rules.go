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
					a := atom{deny: group.deny, id: pol.ID(), ids: map[uint32]bool{}}
					c.Revisions[a.id] = pol.Revision
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
			c.Policy[Key{Endpoint: local.ID, Identity: id, Direction: uint8(dir), Proto: p.proto, Port: p.port, PortBits: p.bits}] = v
		}
	}
	return dd
}

func (c *Compiled) intern(ids map[policy.ID]bool, sets map[string]uint32) uint32 {
	list := make([]policy.ID, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Less(list[j]) })
	var key strings.Builder
	for _, id := range list {
		key.WriteString(string(id.Kind) + "\x00" + id.Namespace + "\x00" + id.Name + "\x00")
	}
	if i, ok := sets[key.String()]; ok {
		return i
	}
	i := uint32(len(c.PolicySets))
	sets[key.String()] = i
	c.PolicySets = append(c.PolicySets, list)
	return i
}
