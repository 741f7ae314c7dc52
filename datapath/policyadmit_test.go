package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// admitTestPolicies: testEP (10.0.0.1, app=client) may reach the
// addresses of *.example.com on TCP 443 and 8000-8100, those of
// api.shop.io on every port, 203.0.113.0/24 on UDP 53 (a CIDR peer new
// addresses fall in) and the world on TCP 9000.
func admitTestPolicies(t *testing.T) []*policy.Policy {
	t.Helper()
	docs, _, err := policy.ParseDocuments("admit.yaml", []byte(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}, {port: "8000", endPort: 8100, protocol: TCP}]}]
  - toFQDNs: [{matchName: api.shop.io}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cidr-and-world, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: [203.0.113.0/24]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
  - toEntities: [world]
    toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	var out []*policy.Policy
	for _, d := range docs {
		d.Policy.Revision = 1
		out = append(out, d.Policy)
	}
	return out
}

func admitTestInput(t *testing.T, names map[netip.Addr][]string) compile.Input {
	return compile.Input{
		Policies: admitTestPolicies(t),
		Endpoints: []compile.Endpoint{{ID: testEP, Identity: 1500, Namespace: "default", Labels: []string{"k8s:app=client"},
			IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}}},
		Identities: []identity.Identity{{ID: 2001, Labels: identity.NewLabels("k8s:app=web")}},
		IPCache:    []compile.IPEntry{{Prefix: netip.MustParsePrefix("10.1.2.3/32"), Identity: 2001}},
		Names:      names,
	}
}

// slotDump is a slot's content as lookups see it: entries wherever
// fill or AdmitPolicy put them, values with their policies' names.
type slotDump struct {
	policy  map[compile.Key]string
	ipcache map[netip.Prefix]uint32
	enforce map[uint32]tcFlowPolicyEnforce // FAST_PEERS cleared: a placement
}

func dumpSlot(t *testing.T, d *Datapath) slotDump {
	t.Helper()
	d.policyMu.Lock()
	defer d.policyMu.Unlock()
	rev := d.PolicyRevision()
	s, names := d.slot(rev), d.names.Load().cur.sets
	out := slotDump{policy: map[compile.Key]string{}, ipcache: map[netip.Prefix]uint32{}, enforce: map[uint32]tcFlowPolicyEnforce{}}
	value := func(action uint8, set uint32) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%d:", action)
		if int(set) < len(names) {
			for _, r := range names[set] {
				b.WriteString(r.Namespace + "/" + r.Name + ",")
			}
		} else {
			fmt.Fprintf(&b, "unknown set %d", set)
		}
		return b.String()
	}
	for _, m := range []*ebpf.Map{s.policy, s.policyRange} {
		var k tcFlowPolicyKey
		var v tcFlowPolicyValue
		it := m.Iterate()
		for it.Next(&k, &v) {
			out.policy[policyKeyOf(k)] = value(v.Action, v.PolicySet)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range s.fast {
		for _, sl := range b.Slot {
			if sl.EndpointId == 0 || sl.Family != 0 {
				continue // empty, or a peer slot (a cache of an identity slot's answer)
			}
			k := compile.Key{Endpoint: swap32(sl.EndpointId), Identity: binary.BigEndian.Uint32(sl.Addr[:4]),
				Direction: sl.Direction, Proto: sl.Proto, Port: swap16(sl.Dport), PortBits: 16}
			out.policy[k] = value(sl.Action, sl.PolicySet)
		}
	}
	for _, m := range []*ebpf.Map{s.ipcache, s.ipcacheLPM} {
		var k tcFlowIpcacheKey
		var id uint32
		it := m.Iterate()
		for it.Next(&k, &id) {
			a := netip.AddrFrom16(k.Addr)
			if k.Family == 4 {
				a = netip.AddrFrom4([4]byte(k.Addr[:4]))
			}
			out.ipcache[netip.PrefixFrom(a, int(k.Prefixlen)-32)] = id
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var ep uint32
	var e tcFlowPolicyEnforce
	it := s.enforce.Iterate()
	for it.Next(&ep, &e) {
		e.Flags &^= uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_FAST_PEERS)
		out.enforce[ep] = e
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// policyKeyOf decodes a policy map key (bpf/flow.h's struct policy_key).
func policyKeyOf(k tcFlowPolicyKey) compile.Key {
	out := compile.Key{Endpoint: swap32(k.EndpointId), Identity: swap32(k.Identity), Direction: k.Direction, Proto: k.Proto,
		Port: swap16(k.Dport)}
	if k.Proto != 0 {
		out.PortBits = uint8(k.Prefixlen - 80)
	}
	return out
}

// For random DNS answers, the slot in force after AdmitPolicy holds what
// ApplyPolicy of a full compile of the same names writes (as lookups see
// it), the programs judge a new address by it at once, and a slot that
// took admissions is emptied whole when it is replaced.
func TestAdmittedEntriesEqualAFullApply(t *testing.T) {
	d := loadForTest(t, Config{})
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	names := map[netip.Addr][]string{netip.MustParseAddr("198.51.100.1"): {"first.example.com"}}
	base, err := compile.Compile(admitTestInput(t, maps.Clone(names)))
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, d, base)
	r := rand.New(rand.NewPCG(13, 1))
	hosts := []string{"a.example.com", "b.example.com", "api.shop.io", "other.org"}
	admitted := 0
	for step := range 30 {
		answer := map[netip.Addr][]string{}
		for range 1 + r.IntN(3) {
			var a netip.Addr
			switch r.IntN(3) {
			case 0:
				a = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(250) + 1)})
			case 1:
				a = netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(250) + 1)})
			default:
				a = netip.AddrFrom16([16]byte{0xfd, 0, 0, 5, 14: byte(r.IntN(200)), 15: byte(step)})
			}
			answer[a] = append(names[a], hosts[r.IntN(len(hosts))])
			names[a] = answer[a]
		}
		at := fmt.Sprintf("step %d (%v)", step, answer)
		next, delta, err := base.Admit(answer)
		if errors.Is(err, compile.ErrRecompile) {
			t.Logf("%s: %v", at, err)
			base, _ = compile.Compile(admitTestInput(t, maps.Clone(names)))
			applyOK(t, d, base)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		if err := d.AdmitPolicy(next, delta); err != nil {
			t.Fatalf("%s: admit: %v", at, err)
		}
		admitted++
		got := dumpSlot(t, d)
		for a := range answer {
			checkAdmittedAddr(t, at, d, next, a)
		}
		full, err := compile.Compile(admitTestInput(t, maps.Clone(names)))
		if err != nil {
			t.Fatal(err)
		}
		applyOK(t, d, full)
		want := dumpSlot(t, d)
		if !maps.Equal(got.policy, want.policy) {
			for k, v := range want.policy {
				if got.policy[k] != v {
					t.Errorf("%s: entry %+v: %q after the admission, %q after a full apply", at, k, got.policy[k], v)
				}
			}
			for k, v := range got.policy {
				if _, ok := want.policy[k]; !ok {
					t.Errorf("%s: entry %+v (%q) after the admission, none after a full apply", at, k, v)
				}
			}
		}
		if !maps.Equal(got.ipcache, want.ipcache) {
			t.Errorf("%s: ipcache %v after the admission, %v after a full apply", at, got.ipcache, want.ipcache)
		}
		if !maps.Equal(got.enforce, want.enforce) {
			t.Errorf("%s: enforce %v after the admission, %v after a full apply", at, got.enforce, want.enforce)
		}
		if t.Failed() {
			t.FailNow()
		}
		// Admit on top of the full apply's, or on the admission's: both
		// are the policy in force in turn.
		base = full
		if step%2 == 0 {
			next2, delta2, err := base.Admit(map[netip.Addr][]string{})
			if err != nil || next2 != base || !delta2.Empty() {
				t.Fatalf("an empty answer: %v, changed %v", err, next2 != base)
			}
		}
	}
	if admitted < 15 {
		t.Fatalf("only %d of 30 answers admitted without a full apply", admitted)
	}
	// A delta of a policy no longer in force is refused.
	stale, delta, err := base.Admit(map[netip.Addr][]string{netip.MustParseAddr("198.51.100.254"): {"late.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, d, base) // the same policy, a new revision: still base
	other, _ := compile.Compile(admitTestInput(t, nil))
	applyOK(t, d, other)
	if err := d.AdmitPolicy(stale, delta); !errors.Is(err, compile.ErrRecompile) {
		t.Fatalf("a delta of a replaced policy: %v, want ErrRecompile", err)
	}
	// Both slots, admissions and all, are emptied by their keys.
	applyOK(t, d, nil)
	applyOK(t, d, nil)
	d.policyMu.Lock()
	err = d.settle()
	d.policyMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpSlot(t, d); len(got.policy)+len(got.ipcache)+len(got.enforce) != 0 {
		t.Fatalf("after two empty revisions the slot holds %d entries", len(got.policy)+len(got.ipcache)+len(got.enforce))
	}
}

// checkAdmittedAddr runs a SYN from testEP to a on TCP 443 and checks the
// programs judge it as next does.
func checkAdmittedAddr(t *testing.T, at string, d *Datapath, next *compile.Compiled, a netip.Addr) {
	t.Helper()
	src := "10.0.0.1"
	if a.Is6() {
		src = "fd00::1"
	}
	want := uint32(tcxDrop)
	if next.Decide(testEP, next.IdentityOf(a), policy.Egress, api.ProtoTCP, 443).Verdict == policy.Allowed {
		want = tcxNext
	}
	pc := policyCase{src: src, dst: a.String(), sport: 41000, dport: 443}
	if ret := pc.run(t, d); ret != want {
		t.Errorf("%s: a SYN to %s:443 gets %#x, want %#x", at, a, ret, want)
	}
}
