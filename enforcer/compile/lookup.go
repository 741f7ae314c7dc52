package compile

import (
	"net/netip"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Lookup does step 2 of the documented lookup order for the flow point k
// (k.PortBits is ignored): the probes with k.Identity, then with identity 0,
// skipping what the endpoint's flags say cannot hit.
func (c *Compiled) Lookup(k Key) (Value, bool) {
	f := c.Flags[k.Endpoint]
	if k.Identity != 0 && f&FlagByIdentity != 0 {
		if v, ok := c.probe(k, f); ok {
			return v, true
		}
	}
	if f&FlagAnyIdentity == 0 {
		return Value{}, false
	}
	k.Identity = 0
	return c.probe(k, f)
}

// probe is one identity's probes, in the kernel's order: exact port, port
// ranges, any port of the protocol, any protocol.
func (c *Compiled) probe(k Key, f ProbeFlags) (Value, bool) {
	q := Key{Endpoint: k.Endpoint, Identity: k.Identity, Direction: k.Direction}
	if k.Proto != 0 {
		q.Proto = k.Proto
		q.Port, q.PortBits = k.Port, 16
		if v, ok := c.Policy[q]; ok {
			return v, true
		}
		if f&FlagRanges != 0 {
			if v, ok := c.rangeLPM(q); ok {
				return v, true
			}
		}
		q.Port, q.PortBits = 0, 0
		if v, ok := c.Policy[q]; ok && f&FlagAnyPort != 0 {
			return v, true
		}
	}
	if f&FlagAnyProto == 0 {
		return Value{}, false
	}
	v, ok := c.Policy[Key{Endpoint: k.Endpoint, Identity: k.Identity, Direction: k.Direction}]
	return v, ok
}

// rangeLPM is the kernel's policy_range trie lookup: the longest range
// block (port bits 15..1) containing the point.
func (c *Compiled) rangeLPM(k Key) (Value, bool) {
	for bits := 15; bits >= 1; bits-- {
		q := k
		q.Port, q.PortBits = k.Port&portMask(uint8(bits)), uint8(bits)
		if v, ok := c.Policy[q]; ok {
			return v, true
		}
	}
	return Value{}, false
}

// IdentityOf is step 1: the ipcache hash on a host address, then the
// ipcache_lpm trie (shorter prefixes; the kernel skips it without
// FlagIPCacheLPM, which is set whenever there are any); a miss is world.
func (c *Compiled) IdentityOf(ip netip.Addr) uint32 {
	ip = ip.Unmap()
	if id, ok := c.IPCache[netip.PrefixFrom(ip, ip.BitLen())]; ok {
		return id
	}
	for bits := ip.BitLen() - 1; bits >= 0; bits-- {
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
