package compile

import (
	"net/netip"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Lookup does steps 2 and 3 of the documented lookup order for the flow
// point k (k.PortBits is ignored): LPM with k.Identity, then with identity 0.
func (c *Compiled) Lookup(k Key) (Value, bool) {
	if v, ok := c.lpm(k); ok {
		return v, true
	}
	if k.Identity == 0 {
		return Value{}, false
	}
	k.Identity = 0
	return c.lpm(k)
}

// lpm is the kernel's LPM-trie lookup restricted to one identity space: the
// longest stored prefix containing the point.
func (c *Compiled) lpm(k Key) (Value, bool) {
	if k.Proto != 0 {
		for bits := 16; bits >= 0; bits-- {
			q := Key{Endpoint: k.Endpoint, Identity: k.Identity, Direction: k.Direction, Proto: k.Proto,
				Port: k.Port & portMask(uint8(bits)), PortBits: uint8(bits)}
			if v, ok := c.Policy[q]; ok {
				return v, true
			}
		}
	}
	v, ok := c.Policy[Key{Endpoint: k.Endpoint, Identity: k.Identity, Direction: k.Direction}]
	return v, ok
}

// IdentityOf is step 1: the ipcache LPM on a peer address; a miss is world.
func (c *Compiled) IdentityOf(ip netip.Addr) uint32 {
	ip = ip.Unmap()
	for bits := ip.BitLen(); bits >= 0; bits-- {
		p, _ := ip.Prefix(bits)
		if id, ok := c.IPCache[p]; ok {
			return id
		}
	}
	return uint32(identity.World)
}

// Decide runs the whole lookup order for a flow of endpoint ep with remote
// identity remote; for ICMP, port is the ICMP type. It returns the verdict
// and the deciding policies, as policy.Evaluate does.
func (c *Compiled) Decide(ep, remote uint32, dir policy.Direction, proto uint8, port uint16) policy.Decision {
	v, ok := c.Lookup(Key{Endpoint: ep, Identity: remote, Direction: uint8(dir), Proto: proto, Port: port})
	if ok {
		names := c.PolicySets[v.PolicySet]
		if v.Action == Deny {
			return policy.Decision{Verdict: policy.DeniedByDeny, Policies: names}
		}
		return policy.Decision{Verdict: policy.Allowed, Policies: names}
	}
	enf := c.Enforce[ep]
	if dir == policy.Ingress && enf.Ingress || dir == policy.Egress && enf.Egress {
		return policy.Decision{Verdict: policy.Denied}
	}
	return policy.Decision{Verdict: policy.NotSelected}
}
