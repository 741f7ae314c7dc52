package compile

import (
	"encoding/binary"
	"net/netip"

	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

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

// FlagHostDevice marks a host device: the endpoint is the host endpoint
// (host policies, a nodeSelector's subject), judged from the host's side:
// on a host device TC ingress carries the host's ingress, and only the
// host's own connections are judged (bpf/host_policy.h). Bit 6 is the
// datapath's (policy_fast peer slots).
const FlagHostDevice ProbeFlags = 1 << 7

// Enforcement says whether an endpoint is in default deny per direction.
type Enforcement struct {
	Ingress, Egress bool
}

// Compiled is the kernel's form of a policy set. A part of policy the
// kernel does not enforce (L7 rules for a proxy, say) becomes a field of
// its own beside these maps, applied by whoever enforces that part.
type Compiled struct {
	// Policy is the policy map.
	Policy map[Key]Value
	// Enforce is the enforcement map, by endpoint id.
	Enforce map[uint32]Enforcement
	// PolicySets are the deciding-policy sets; Value.PolicySet indexes it
	// and set 0 is empty.
	PolicySets [][]policy.ID
	// Revisions are the revisions of the policies in PolicySets.
	Revisions map[policy.ID]uint64
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
	// L7 are the ports L7 rules cover, by endpoint, direction and port:
	// the L7 proxy enforces them (compile.L7Port).
	L7 []L7Port

	// FQDNAddrs are the addresses of Input.Names some toFQDNs selector
	// selects, with those selectors (sorted): what a new DNS answer is
	// compared with to tell whether it changes the policy (FQDNSelects).
	FQDNAddrs map[netip.Addr][]dnsmatch.Selector
	// DNS is the DNS proxy's part: the rules it checks queries against,
	// whose IdentityOf is this policy's ipcache (dns.go).
	DNS dnsmatch.Rules
	// DNSRedirects are the (endpoint, protocol, port) whose queries go
	// through the DNS proxy, sorted.
	DNSRedirects []DNSRedirect

	fqdn      fqdnIndex
	fqdnHosts map[identity.ID]netip.Addr // host CIDR identities' addresses (indexFQDNHosts)
	// dnsCandidates are, per endpoint, the allows compileDNS made DNS
	// rules of, in order (read-only once compiled).
	dnsCandidates map[uint32][]dnsCandidate

	// in is what Compile compiled (without its Names), for Admit;
	// compiled says Compile (or Admit) made it.
	in       Input
	compiled bool
	// selecting is, per endpoint of in, the rules that select it: made
	// once, when Admit first needs it, and shared by what Admit makes.
	selecting *endpointRules
	// fqdnSelectors are in's toFQDNs selectors; nil when there are none.
	fqdnSelectors *dnsmatch.Index
}
