package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/compile"
)

// The policy maps are pinned by name (LIBBPF_PIN_BY_NAME in tc_flow.c)
// directly under PinPath and adopted by the next Load.
var policyPins = []string{"policy_rev", "policy_0", "policy_1", "policy_range_0", "policy_range_1",
	"ipcache_0", "ipcache_1", "ipcache_lpm_0", "ipcache_lpm_1", "enforce_0", "enforce_1", "policy_fast_0", "policy_fast_1", "local_ep_0", "local_ep_1"}

// The generated structs and enforcer/compile's MarshalBinary must agree on
// the kernel layout; a drift fails the build.
var (
	_ [16]byte = [unsafe.Sizeof(tcFlowPolicyKey{})]byte{}
	_ [8]byte  = [unsafe.Sizeof(tcFlowPolicyValue{})]byte{}
	_ [8]byte  = [unsafe.Sizeof(tcFlowPolicyState{})]byte{}
	_ [4]byte  = [unsafe.Sizeof(tcFlowPolicyEnforce{})]byte{}
	_ [24]byte = [unsafe.Sizeof(tcFlowIpcacheKey{})]byte{}
)

// enforcer/compile's probe flags are the kernel's policy_enforce flags; a
// drift fails the build (a non-zero difference is a negative array length).
var _ [0]struct{} = [(uint8(compile.FlagIPCacheLPM) ^ uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_IPCACHE_LPM)) |
	(uint8(compile.FlagRanges) ^ uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_RANGES)) |
	(uint8(compile.FlagAnyPort) ^ uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_ANY_PORT)) |
	(uint8(compile.FlagAnyProto) ^ uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_ANY_PROTO)) |
	(uint8(compile.FlagByIdentity) ^ uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_BY_IDENTITY)) |
	(uint8(compile.FlagAnyIdentity) ^ uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_ANY_IDENTITY))]struct{}{}

// policySlot is one of the two copies of the policy maps: revision r lives
// in slot r&1.
type policySlot struct {
	policy, policyRange, ipcache, ipcacheLPM, enforce, localEP *ebpf.Map
	fast                                                       fastTable
}

func (d *Datapath) slot(rev uint64) policySlot {
	o := &d.objs
	if rev&1 == 1 {
		return policySlot{o.Policy1, o.PolicyRange1, o.Ipcache1, o.IpcacheLpm1, o.Enforce1, o.LocalEp1, d.fast[1]}
	}
	return policySlot{o.Policy0, o.PolicyRange0, o.Ipcache0, o.IpcacheLpm0, o.Enforce0, o.LocalEp0, d.fast[0]}
}

// revisionNames is the policy-name-set table of one revision.
type revisionNames struct {
	rev  uint64
	sets [][]api.PolicyRef
	// hosts are the host devices (compile.FlagHostDevice): their TC
	// ingress is the host endpoint's ingress.
	hosts map[uint32]bool
}

// nameTables are the tables of the active revision and the one before it:
// events judged by either decode to names (events of older revisions, and
// of a revision adopted from a previous run, carry none).
type nameTables struct {
	cur, prev revisionNames
}

// lookup returns the names of set in revision rev, nil when unknown, and
// whether endpoint ep was a host device in that revision. The slice is the
// table's own: read-only, never copied.
func (t *nameTables) lookup(rev uint64, set uint32, ep uint32) (names []api.PolicyRef, host bool) {
	var r *revisionNames
	switch rev {
	case t.cur.rev:
		r = &t.cur
	case t.prev.rev:
		r = &t.prev
	default:
		return nil, false
	}
	if int(set) >= len(r.sets) {
		return nil, false
	}
	return r.sets[set], r.hosts[ep]
}

// policyRefs is the compiled policy sets as flows name them, built once per
// revision so decoding shares them.
func policyRefs(c *compile.Compiled) [][]api.PolicyRef {
	out := make([][]api.PolicyRef, len(c.PolicySets))
	for i, set := range c.PolicySets {
		if len(set) == 0 {
			continue
		}
		refs := make([]api.PolicyRef, len(set))
		for j, id := range set {
			refs[j] = api.PolicyRef{Name: id.Name, Namespace: id.Namespace, Kind: string(id.Kind), Revision: c.Revisions[id]}
		}
		out[i] = refs
	}
	return out
}

// openPolicy maps the revision word and creates the grace-period map; called
// by Load once the (possibly adopted) maps are loaded.
func (d *Datapath) openPolicy() error {
	mem, err := unix.Mmap(d.objs.PolicyRev.FD(), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap policy_rev: %w", err)
	}
	d.policyMem = mem
	for i, m := range []*ebpf.Map{d.objs.PolicyFast0, d.objs.PolicyFast1} {
		if d.fast[i], d.fastMem[i], err = mapFast(m); err != nil {
			return err
		}
	}
	d.graceInner, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create grace-period inner map: %w", err)
	}
	d.grace, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 1,
		InnerMap: &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}})
	if err != nil {
		return fmt.Errorf("create grace-period map: %w", err)
	}
	rev := atomic.LoadUint64(d.revWord())
	d.revision.Store(rev)
	d.names.Store(&nameTables{cur: revisionNames{rev: rev}})
	if rev != 0 {
		if d.fastNew {
			// Written by a version that kept every exact-port key in the
			// policy hash: look there on every policy_fast miss.
			d.slot(rev).fast.spillAll()
		}
		d.log.Info("adopted the pinned policy of a previous run", "revision", rev)
	}
	return nil
}

// closePolicy unmaps the revision word and, unless keep (a policy is in
// force), unpins the policy and redirect maps: a clean shutdown without policy leaves
// nothing under PinPath, one with policy leaves the policy for the next Load.
func (d *Datapath) closePolicy(keep bool) []error {
	d.policyMu.Lock() // an ApplyPolicy in progress finishes first
	defer d.policyMu.Unlock()
	var errs []error
	if err := d.settle(); err != nil { // before the fast tables are unmapped
		errs = append(errs, err)
	}
	if d.policyMem != nil {
		errs = append(errs, unix.Munmap(d.policyMem))
		d.policyMem = nil
	}
	for i := range d.fastMem {
		if d.fastMem[i] != nil {
			errs = append(errs, unix.Munmap(d.fastMem[i]))
		}
		d.fastMem[i], d.fast[i] = nil, nil
	}
	for _, m := range []*ebpf.Map{d.grace, d.graceInner} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	d.grace, d.graceInner = nil, nil
	if keep {
		d.log.Info("policy left pinned for the next run", "pin_path", d.cfg.PinPath)
		return errs
	}
	o := &d.objs
	for _, m := range []*ebpf.Map{o.PolicyRev, o.Policy0, o.Policy1, o.PolicyRange0, o.PolicyRange1,
		o.Ipcache0, o.Ipcache1, o.IpcacheLpm0, o.IpcacheLpm1, o.Enforce0, o.Enforce1, o.PolicyFast0, o.PolicyFast1, o.LocalEp0, o.LocalEp1,
		o.Redirect, o.HostMac} {
		if m != nil && m.IsPinned() {
			errs = append(errs, m.Unpin())
		}
	}
	return errs
}

// policyInForce reports whether the active revision selects any endpoint.
func (d *Datapath) policyInForce() bool {
	rev := d.PolicyRevision()
	if rev == 0 {
		return false
	}
	var k uint32
	err := d.slot(rev).enforce.NextKey(nil, &k)
	return err == nil
}

// pinnedPolicyInForce reports whether the policy maps pinned under pinPath
// (by a previous run) hold a revision that selects some endpoint; false when
// there are none or they cannot be read.
func pinnedPolicyInForce(pinPath string) bool {
	rm, err := ebpf.LoadPinnedMap(filepath.Join(pinPath, "policy_rev"), nil)
	if err != nil {
		return false
	}
	defer rm.Close()
	var st tcFlowPolicyState
	if rm.Lookup(uint32(0), &st) != nil || st.Revision == 0 {
		return false
	}
	em, err := ebpf.LoadPinnedMap(filepath.Join(pinPath, fmt.Sprintf("enforce_%d", st.Revision&1)), nil)
	if err != nil {
		return false
	}
	defer em.Close()
	var k uint32
	return em.NextKey(nil, &k) == nil
}

// revWord is the mmapped policy_state.revision; callers hold policyMu or
// are Load and Close.
func (d *Datapath) revWord() *uint64 {
	return (*uint64)(unsafe.Pointer(&d.policyMem[0]))
}

// PolicyRevision returns the policy revision the programs judge new (and
// re-judge existing) connections with; 0 when no policy was ever applied.
func (d *Datapath) PolicyRevision() uint64 {
	return d.revision.Load()
}

// ApplyPolicy makes c the policy in force, as revision PolicyRevision()+1,
// atomically: it fills the inactive slot's ipcache, policy and enforce maps
// and publishes the revision with one 8-byte store (every packet reads it
// once and judges with that slot only); it returns then, with c in force.
// The old slot is emptied once an RCU grace period has passed (no program
// still runs with it), in the background: the next ApplyPolicy (or Close)
// waits for that first. Existing connections are re-judged by their next
// packet. A nil c removes every policy (a new, empty revision). Endpoints
// set by SetPolicyAudit are in audit mode.
func (d *Datapath) ApplyPolicy(c *compile.Compiled) error {
	d.policyMu.Lock()
	defer d.policyMu.Unlock()
	return d.applyLocked(c)
}

func (d *Datapath) applyLocked(c *compile.Compiled) error {
	if d.policyMem == nil {
		return errors.New("apply policy: datapath closed")
	}
	if err := d.settle(); err != nil {
		return fmt.Errorf("apply policy: the previous revision: %w", err)
	}
	cur := d.PolicyRevision()
	next := cur + 1
	in, old := d.slot(next), d.slot(cur)
	// Left over by an ApplyPolicy that failed or a crashed run.
	if err := in.empty(d.content[next&1]); err != nil {
		d.content[next&1] = slotContent{}
		return fmt.Errorf("apply policy: clear inactive slot: %w", err)
	}
	d.content[next&1] = slotContent{known: true}
	if err := d.fill(in, c); err != nil {
		cerr := in.clear()
		d.content[next&1] = slotContent{known: cerr == nil}
		return errors.Join(fmt.Errorf("apply policy revision %d: %w", next, err), cerr)
	}
	d.content[next&1] = slotContent{known: true, c: c}
	t := &nameTables{cur: revisionNames{rev: next}}
	if c != nil {
		t.cur.sets = policyRefs(c)
		for ep, f := range c.Flags {
			if f&compile.FlagHostDevice != 0 {
				if t.cur.hosts == nil {
					t.cur.hosts = map[uint32]bool{}
				}
				t.cur.hosts[ep] = true
			}
		}
	}
	if p := d.names.Load(); p != nil {
		t.prev = p.cur
	}
	d.names.Store(t) // before the flip: the first events of next find their names
	atomic.StoreUint64(d.revWord(), next)
	d.revision.Store(next)
	d.lastPolicy = c
	d.settling = d.startSettling(old, cur&1, d.content[cur&1])
	d.log.Info("policy applied", "revision", next)
	return nil
}

// settling is the grace period after a revision change and the emptying of
// the old slot that follows it, run by one goroutine.
type settling struct {
	old   policySlot
	index uint64 // old's slot number
	done  chan struct{}
	err   error // set before done closes
}

// startSettling waits, in the background, for an RCU grace period (every
// TC program that read the previous revision has returned: an update of a
// map-in-map makes the kernel wait for one, synchronize_rcu in
// maybe_wait_bpf_programs) and then empties old (slot index, holding
// content).
func (d *Datapath) startSettling(old policySlot, index uint64, content slotContent) *settling {
	s := &settling{old: old, index: index, done: make(chan struct{})}
	grace, inner := d.grace, d.graceInner
	go func() {
		defer close(s.done)
		if s.err = grace.Put(uint32(0), inner); s.err != nil {
			s.err = fmt.Errorf("wait for running programs (old slot kept): %w", s.err)
			return
		}
		if s.err = old.empty(content); s.err != nil {
			s.err = fmt.Errorf("clear old slot: %w", s.err)
		}
	}()
	return s
}

// settle waits for the last revision change to settle; when that failed
// it tries once more here. policyMu is held.
func (d *Datapath) settle() error {
	s := d.settling
	if s == nil {
		return nil
	}
	<-s.done
	if s.err != nil {
		d.content[s.index] = slotContent{}
		if err := d.waitPrograms(); err != nil {
			return fmt.Errorf("wait for running programs (old slot kept): %w", err)
		}
		if err := s.old.clear(); err != nil {
			return fmt.Errorf("clear old slot: %w", err)
		}
	}
	d.content[s.index] = slotContent{known: true}
	d.settling = nil
	return nil
}

// SetPolicyAudit puts endpoint (its host-side ifindex) in audit mode or
// out of it: its connections are judged and reported (verdict AUDIT for
// those policy would drop) but never dropped. It applies the last policy
// again as a new revision, so existing connections are re-judged. Before
// the first ApplyPolicy of this Datapath (an adopted policy included) it
// takes effect with that ApplyPolicy.
func (d *Datapath) SetPolicyAudit(endpoint uint32, audit bool) error {
	d.policyMu.Lock()
	defer d.policyMu.Unlock()
	if d.audit == nil {
		d.audit = map[uint32]bool{}
	}
	if audit {
		d.audit[endpoint] = true
	} else {
		delete(d.audit, endpoint)
	}
	if d.lastPolicy == nil {
		return nil // takes effect with the next ApplyPolicy
	}
	return d.applyLocked(d.lastPolicy)
}

// fill writes c into slot s (empty), each entry into the map that
// enforcer/compile's layout gives it (exact-port keys into policy_fast,
// the hash only for those it cannot hold, see bpf/flow.h), and sets the
// enforce flags that let the programs skip an empty trie.
func (d *Datapath) fill(s policySlot, c *compile.Compiled) error {
	if c == nil {
		return nil
	}
	for p, id := range c.IPCache {
		k, err := ipcacheKey(p)
		if err != nil {
			return err
		}
		m := s.ipcache
		if !compile.HostPrefix(p) {
			m = s.ipcacheLPM
		}
		if err := m.Put(&k, id); err != nil {
			return fmt.Errorf("ipcache %s: %w", p, err)
		}
	}
	for a, ep := range c.LocalIngress {
		k, err := ipcacheKey(netip.PrefixFrom(a, a.BitLen()))
		if err != nil {
			return err
		}
		if err := s.localEP.Put(&k, ep); err != nil {
			return fmt.Errorf("local endpoint %s: %w", a, err)
		}
	}
	spilled, st := s.fast.fill(c)
	for _, k := range spilled {
		if err := putPolicy(s.policy, k, c.Policy[k]); err != nil {
			return err
		}
	}
	selected := map[uint32]bool{}
	for k, v := range c.Policy {
		selected[k.Endpoint] = true
		if exactPort(k) {
			continue // in policy_fast, or spilled (above)
		}
		m := s.policy
		if k.InRangeTrie() {
			m = s.policyRange
		}
		if err := putPolicy(m, k, v); err != nil {
			return err
		}
	}
	for ep, e := range c.Enforce {
		if e.Ingress || e.Egress {
			selected[ep] = true
		}
	}
	// Only selected endpoints get an entry: the others skip every lookup.
	for ep := range selected {
		e := c.Enforce[ep]
		v := tcFlowPolicyEnforce{Ingress: b2u(e.Ingress), Egress: b2u(e.Egress), Audit: b2u(d.audit[ep]),
			Flags: uint8(c.Flags[ep])}
		if st.peerEndpoints[ep] {
			v.Flags |= uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_FAST_PEERS)
		}
		if err := s.enforce.Put(ep, &v); err != nil {
			return fmt.Errorf("enforce entry of endpoint %d: %w", ep, err)
		}
	}
	d.log.Debug("policy_fast filled", "identity_slots", st.identity, "spilled_to_hash", st.spilled,
		"peer_slots", st.peers, "peer_slots_skipped", st.peersSkipped)
	return nil
}

// putPolicy writes one entry into a policy map.
func putPolicy(m *ebpf.Map, k compile.Key, v compile.Value) error {
	kb, _ := k.MarshalBinary()
	vb, _ := v.MarshalBinary()
	if err := m.Put(kb, vb); err != nil {
		return fmt.Errorf("policy entry %+v: %w", k, err)
	}
	return nil
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// ipcacheKey encodes struct ipcache_key for p (IPv4-mapped prefixes as IPv4).
func ipcacheKey(p netip.Prefix) (tcFlowIpcacheKey, error) {
	var k tcFlowIpcacheKey
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	if !p.IsValid() || bits < 0 {
		return k, fmt.Errorf("ipcache: invalid prefix %s", p)
	}
	if a.Is4() {
		k.Family = 4
		b := a.As4()
		copy(k.Addr[:], b[:])
	} else {
		k.Family = 6
		k.Addr = a.As16()
	}
	k.Prefixlen = 32 + uint32(bits)
	return k, nil
}

// clear deletes every entry of the slot's maps.
func (s policySlot) clear() error {
	clear(s.fast)
	return errors.Join(clearMap[tcFlowPolicyKey](s.policy), clearMap[tcFlowPolicyKey](s.policyRange),
		clearMap[tcFlowIpcacheKey](s.ipcache), clearMap[tcFlowIpcacheKey](s.ipcacheLPM), clearMap[uint32](s.enforce),
		clearMap[tcFlowIpcacheKey](s.localEP))
}

func clearMap[K any](m *ebpf.Map) error {
	var keys []K
	var k K
	err := m.NextKey(nil, &k)
	for err == nil {
		keys = append(keys, k)
		err = m.NextKey(&keys[len(keys)-1], &k)
	}
	if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("list %s: %w", m, err)
	}
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from %s: %w", m, err)
		}
	}
	return nil
}

// waitPrograms returns after an RCU grace period: every TC program that read
// the previous revision has returned. An update of a map-in-map makes the
// kernel wait for one (synchronize_rcu in maybe_wait_bpf_programs).
func (d *Datapath) waitPrograms() error {
	return d.grace.Put(uint32(0), d.graceInner)
}
