package datapath

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// A bucket of policy_fast is one cache line: a lookup reads one line.
var _ [64]byte = [unsafe.Sizeof(tcFlowPolicyFastBucket{})]byte{}

// fastTable is one copy of policy_fast (see bpf/flow.h), mmapped: the
// inactive copy is written in place and the old one zeroed after the grace
// period, with no syscall per bucket.
type fastTable []tcFlowPolicyFastBucket

// mapFast mmaps the buckets of m (an mmapable array of policy_fast_bucket).
func mapFast(m *ebpf.Map) (fastTable, []byte, error) {
	n := int(m.MaxEntries())
	size := n * int(unsafe.Sizeof(tcFlowPolicyFastBucket{}))
	if n == 0 || n&(n-1) != 0 {
		return nil, nil, fmt.Errorf("mmap %s: %d buckets is not a power of two", m, n)
	}
	page := os.Getpagesize()
	mem, err := unix.Mmap(m.FD(), 0, (size+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", m, err)
	}
	return unsafe.Slice((*tcFlowPolicyFastBucket)(unsafe.Pointer(&mem[0])), n), mem, nil
}

// policyFastHash is bpf/tc_flow.c's policy_fast_hash: the bucket of s in a
// table of nb (a power of two) buckets.
func policyFastHash(s *tcFlowPolicyFastSlot, nb int) int {
	mix := func(h, w uint32) uint32 {
		h = (h ^ w) * 0x9e3779b1
		return h ^ h>>15
	}
	// The kernel reads the first two words as little-endian u32 of the
	// struct's bytes: endpoint_id (big endian), then direction, proto, dport.
	h := mix(0, s.EndpointId)
	h = mix(h, uint32(s.Direction)|uint32(s.Proto)<<8|uint32(s.Dport)<<16)
	h = mix(h, uint32(s.Family))
	for i := 0; i < 16; i += 4 {
		h = mix(h, binary.LittleEndian.Uint32(s.Addr[i:]))
	}
	return int(h & uint32(nb-1))
}

// fastSlotMatches is the kernel's fast_match.
func fastSlotMatches(s, q *tcFlowPolicyFastSlot) bool {
	return s.EndpointId == q.EndpointId && s.Direction == q.Direction && s.Proto == q.Proto &&
		s.Dport == q.Dport && s.Family == q.Family && s.Addr == q.Addr
}

// fastSlot is the slot of exact-port policy key k (value v) for the peer
// at family, addr (family 0: the identity slot of k).
func fastSlot(k compile.Key, v compile.Value, family uint8, addr [16]byte) tcFlowPolicyFastSlot {
	s := tcFlowPolicyFastSlot{Direction: k.Direction, Proto: k.Proto, Family: family, Action: uint8(v.Action),
		PolicySet: v.PolicySet, Addr: addr}
	// The generated struct holds the bytes as the kernel does: __be32 and
	// __be16 fields are stored byte-swapped on this little-endian target.
	s.EndpointId = swap32(k.Endpoint)
	s.Dport = swap16(k.Port)
	if family == 0 {
		binary.BigEndian.PutUint32(s.Addr[:], k.Identity)
	}
	return s
}

func swap32(x uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return binary.LittleEndian.Uint32(b[:])
}

func swap16(x uint16) uint16 { return x>>8 | x<<8 }

// exactPort reports whether k is a single-port key: the keys policy_fast
// holds (identity slots), and whose answer a peer slot caches.
func exactPort(k compile.Key) bool {
	return k.Proto != 0 && k.PortBits == 16
}

// fastStats says what a fill put where.
type fastStats struct {
	identity, spilled, peers, peersSkipped int
	peerEndpoints                          map[uint32]bool // endpoints with peer slots
}

// fill writes c's exact-port keys into t (zeroed) and returns the keys that
// did not fit (their buckets marked spill: they belong in the policy hash),
// then the peer slots of every host ipcache entry whose identity has
// exact-port keys, into the slots left free. Keys are placed in a sorted
// order, so a policy always gets the same layout.
func (t fastTable) fill(c *compile.Compiled) (spilled []compile.Key, st fastStats) {
	st.peerEndpoints = map[uint32]bool{}
	var exact []compile.Key
	byIdentity := map[uint32][]compile.Key{}
	for k := range c.Policy {
		if !exactPort(k) {
			continue
		}
		exact = append(exact, k)
	}
	slices.SortFunc(exact, compareKeys)
	for _, k := range exact {
		s := fastSlot(k, c.Policy[k], 0, [16]byte{})
		if !t.place(&s) {
			t[policyFastHash(&s, len(t))].Slot[0].Spill = 1
			spilled = append(spilled, k)
			continue
		}
		st.identity++
		if k.Identity != 0 {
			byIdentity[k.Identity] = append(byIdentity[k.Identity], k)
		}
	}
	st.spilled = len(spilled)
	if len(byIdentity) == 0 {
		return spilled, st
	}

	// Host entries, as the kernel's ipcache hash holds them (IPv4-mapped
	// addresses as IPv4); an address listed twice is left to the hash.
	type host struct {
		family uint8
		addr   [16]byte
		id     uint32
	}
	seen := map[tcFlowIpcacheKey]int{}
	var hosts []host
	for p, id := range c.IPCache {
		if !compile.HostPrefix(p) {
			continue
		}
		ik, err := ipcacheKey(p)
		if err != nil {
			continue
		}
		seen[ik]++
		if len(byIdentity[id]) > 0 {
			hosts = append(hosts, host{ik.Family, ik.Addr, id})
		}
	}
	slices.SortFunc(hosts, func(a, b host) int {
		return cmp.Or(cmp.Compare(a.family, b.family), slices.Compare(a.addr[:], b.addr[:]))
	})
	for _, h := range hosts {
		if seen[tcFlowIpcacheKey{Prefixlen: 32 + 8*uint32(addrLen(h.family)), Family: h.family, Addr: h.addr}] > 1 {
			continue
		}
		for _, k := range byIdentity[h.id] {
			s := fastSlot(k, c.Policy[k], h.family, h.addr)
			if t.place(&s) {
				st.peers++
				st.peerEndpoints[k.Endpoint] = true
			} else {
				st.peersSkipped++
			}
		}
	}
	return spilled, st
}

func addrLen(family uint8) int {
	if family == 4 {
		return 4
	}
	return 16
}

// place writes s into a free slot of its bucket; false when both are taken.
func (t fastTable) place(s *tcFlowPolicyFastSlot) bool {
	b := &t[policyFastHash(s, len(t))]
	for i := range b.Slot {
		if b.Slot[i].EndpointId == 0 {
			spill := b.Slot[i].Spill
			b.Slot[i] = *s
			b.Slot[i].Spill = spill
			return true
		}
	}
	return false
}

// lookup is the kernel's policy_fast_lookup (tests).
func (t fastTable) lookup(q *tcFlowPolicyFastSlot) (s tcFlowPolicyFastSlot, ok, spill bool) {
	b := &t[policyFastHash(q, len(t))]
	for i := range b.Slot {
		if fastSlotMatches(&b.Slot[i], q) {
			return b.Slot[i], true, b.Slot[0].Spill != 0
		}
	}
	return s, false, b.Slot[0].Spill != 0
}

// spillAll marks every bucket spilled: every exact-port key is looked up in
// the policy hash too (a revision adopted from a version that kept them all
// there).
func (t fastTable) spillAll() {
	for i := range t {
		t[i].Slot[0].Spill = 1
	}
}

func compareKeys(a, b compile.Key) int {
	return cmp.Or(cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Identity, b.Identity),
		cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port),
		cmp.Compare(a.PortBits, b.PortBits))
}
