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
//
// # L7 rules
//
// The kernel does not judge HTTP: Compiled.L7 lists the (endpoint,
// direction, TCP port) that L7 rules cover, each with its peers grouped by
// identity (as address sets from the ipcache, partitioning every address)
// and the requests each group may send (l7.go); the L7 proxy enforces it.
// Its tests hold it against policy.EvaluateHTTP.
//
// # DNS
//
// toFQDNs compiles like a CIDR rule over the addresses DNS answers gave
// the names it selects (Input.Names): each gets a host CIDR identity and
// an ipcache entry (fqdn.go), and FQDNAddrs tells whether a new answer
// changes anything. Admit (admit.go) adds a new answer's addresses to a
// compiled policy as a Delta of new entries, those a full compile would
// add, or says why only a full compile can (ErrRecompile). rules.dns is not the kernel's: it
// becomes the DNS proxy's part, Compiled.DNS (a dnsmatch table's rules,
// by server identity through this ipcache) and DNSRedirects, the
// endpoints' DNS ports to steer to the proxy (dns.go), both held against
// policy.EvaluateDNS.
package compile

import (
	"fmt"
	"net/netip"

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
	// Host makes the endpoint the host endpoint on a host device (ID is
	// the device's ifindex): host policies select it, by Labels
	// (reserved:host and the node's labels), and its Identity is host's.
	Host bool
	// Audit: its L7 policy (HTTP and DNS) judges and reports, never denies
	// (the kernel's audit mode is the applier's, SetPolicyAudit).
	Audit bool
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
	// Names are the names DNS answers the node's proxy saw gave each
	// address (every endpoint's, unexpired): toFQDNs selects by them.
	Names map[netip.Addr][]string
}

// Compile compiles in.
func Compile(in Input) (*Compiled, error) {
	c := &Compiled{
		Policy:     make(map[Key]Value),
		Enforce:    make(map[uint32]Enforcement),
		PolicySets: [][]policy.ID{nil},
		Revisions:  make(map[policy.ID]uint64),
		IPCache:    make(map[netip.Prefix]uint32),
	}
	universe, err := c.identities(in)
	if err != nil {
		return nil, err
	}
	c.indexFQDNHosts(universe)
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
		c.compileDNS(in.Policies, local, ep.Audit, universe)
	}
	c.compileL7(in, universe)
	c.Flags = c.probeFlags()
	for _, ep := range in.Endpoints {
		if ep.Host {
			c.Flags[ep.ID] |= FlagHostDevice
		}
	}
	c.LocalIngress = c.localIngress(in.Endpoints)
	c.in, c.compiled, c.selecting = in, true, &endpointRules{}
	c.in.Names = nil // Admit extends FQDNAddrs, which holds what counted
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
		if !judged[ep.ID] || ep.Host {
			continue // the host's ingress is judged on its devices
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
		out[k.Endpoint] |= base | k.probeFlags()
	}
	return out
}

// probeFlags are the probes that can hit k.
func (k Key) probeFlags() ProbeFlags {
	var f ProbeFlags
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
	return f
}
