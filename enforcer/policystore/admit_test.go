package policystore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// mapsApplier is an Admitter that keeps the kernel's maps as the
// datapath would: replaced whole by ApplyPolicy, extended entry by entry
// by AdmitPolicy's delta (not from next: the delta is what the datapath
// writes). Values carry their policy sets' names, as flows see them.
type mapsApplier struct {
	inForce *compile.Compiled
	policy  map[compile.Key]string
	ipcache map[netip.Prefix]uint32
	flags   map[uint32]compile.ProbeFlags
	applies int
	admits  int
}

func (m *mapsApplier) ApplyPolicy(c *compile.Compiled) error {
	m.inForce, m.policy, m.ipcache, m.flags = c, kernelPolicy(c), maps.Clone(c.IPCache), maps.Clone(c.Flags)
	m.applies++
	return nil
}

func (m *mapsApplier) SetPolicyAudit(uint32, bool) error { return nil }

func (m *mapsApplier) AdmitPolicy(next *compile.Compiled, d *compile.Delta) error {
	if d.Base != m.inForce {
		return fmt.Errorf("%w: not the base", compile.ErrRecompile)
	}
	for k, v := range d.Policy {
		if _, ok := m.policy[k]; ok {
			return fmt.Errorf("delta entry %+v is in force already", k)
		}
		m.policy[k] = valueNames(next, v)
	}
	for p, id := range d.IPCache {
		if _, ok := m.ipcache[p]; ok {
			return fmt.Errorf("delta ipcache entry %s is in force already", p)
		}
		m.ipcache[p] = id
	}
	maps.Copy(m.flags, d.Flags)
	m.inForce = next
	m.admits++
	return nil
}

// kernelPolicy is c's policy map with each value's set by its names.
func kernelPolicy(c *compile.Compiled) map[compile.Key]string {
	out := make(map[compile.Key]string, len(c.Policy))
	for k, v := range c.Policy {
		out[k] = valueNames(c, v)
	}
	return out
}

func valueNames(c *compile.Compiled, v compile.Value) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", v.Action)
	for _, id := range c.PolicySets[v.PolicySet] {
		b.WriteString(id.Ref() + ",")
	}
	return b.String()
}

// admitPolicies are the policies the equivalence test applies and deletes
// at random: every kind of selector that can select a CIDR identity
// (toFQDNs by name and pattern, toCIDR, toCIDRSet with except, toEntities
// world and all, fromCIDR, fromEntities world), deny rules and DNS rules
// that cover the answers' addresses (a toFQDNs allow of every port beside
// a DNS rule whose names had no address makes its first DNS rule), and
// some that cover none.
var admitPolicies = []struct{ name, namespace, spec string }{
	{"fqdn-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egress: [{toFQDNs: [{matchPattern: "*.example.com"}], toPorts: [{ports: [{port: "443", protocol: TCP}]}]}]}`},
	{"fqdn-back", "shop", `{endpointSelector: {},
  egress: [{toFQDNs: [{matchName: "api.shop.io"}, {matchPattern: "*.cdn.net"}]}]}`},
	{"fqdn-back-80", "shop", `{endpointSelector: {},
  egress: [{toFQDNs: [{matchPattern: "*.example.com"}],
    toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "8000", endPort: 8100, protocol: TCP}]}]}]}`},
	{"cidr-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egress: [{toCIDR: [203.0.113.0/24], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]}`},
	{"cidrset-back", "shop", `{endpointSelector: {},
  egress: [{toCIDRSet: [{cidr: 203.0.0.0/8, except: [203.0.113.128/25]}], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]}`},
	{"world-back", "shop", `{endpointSelector: {},
  egress: [{toEntities: [world], toPorts: [{ports: [{port: "9000", protocol: TCP}]}]}]}`},
	{"all-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egress: [{toEntities: [all], toPorts: [{ports: [{port: "123", protocol: UDP}]}]}]}`},
	{"deny-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egressDeny: [{toCIDR: [203.0.113.66/32]}]}`},
	{"in-world-back", "shop", `{endpointSelector: {},
  ingress: [{fromEntities: [world], toPorts: [{ports: [{port: "22", protocol: TCP}]}]}]}`},
	{"in-cidr-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  ingress: [{fromCIDR: [198.51.100.0/24]}]}`},
	{"dns-world-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egress: [{toEntities: [world], toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]}]}`},
	{"dns-back", "shop", `{endpointSelector: {},
  egress: [{toEndpoints: [{matchLabels: {app: frontend, k8s:io.kubernetes.pod.namespace: default}}],
    toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*.example.com"}]}}]}]}`},
	{"cidr32-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egress: [{toCIDR: [203.0.113.12/32], toPorts: [{ports: [{port: "25", protocol: TCP}]}]}]}`},
	{"fqdn-back-any", "shop", `{endpointSelector: {},
  egress: [{toFQDNs: [{matchName: "other.org"}]}]}`},
	{"v6-front", "default", `{endpointSelector: {matchLabels: {app: frontend}},
  egress: [{toCIDR: ["fd00:5::/64"], toPorts: [{ports: [{port: "443", protocol: TCP}]}]}]}`},
}

func admitPolicyYAML(i int) string {
	p := admitPolicies[i]
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec: %s\n",
		p.name, p.namespace, p.spec)
}

var (
	admitNames = []string{"a.example.com.", "b.example.com.", "c.example.com.", "api.shop.io.", "x.cdn.net.", "other.org."}
	admitAddrs = func() []netip.Addr {
		var out []netip.Addr
		for i := range 12 {
			out = append(out, netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i*11)}))
		}
		for i := range 6 {
			out = append(out, netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}))
		}
		for i := range 4 {
			out = append(out, netip.MustParseAddr(fmt.Sprintf("fd00:5::%x", i+1)))
		}
		// A local endpoint's address: toFQDNs gives it no CIDR identity.
		return append(out, netip.MustParseAddr("198.18.0.3"))
	}()
)

// For random sequences of policy changes, DNS answers and expiries, the
// maps after incremental admissions (the delta added to the maps in force,
// as the datapath does) equal the maps a full compile of the same state
// (the applied policies, every name now) gives, and the policy the store
// holds equals it too.
func TestIncrementalAdmissionsEqualAFullCompile(t *testing.T) {
	var admits, recompiles int
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 13))
		a, names := &mapsApplier{}, &fakeNames{}
		s, err := New(Options{Applier: a, Endpoints: newTestEndpoints(t), Names: names})
		if err != nil {
			t.Fatal(err)
		}
		applied := map[int]bool{}
		for step := range 60 {
			var what string
			switch op := r.IntN(10); {
			case op < 2 || len(applied) == 0:
				i := r.IntN(len(admitPolicies))
				what = "apply " + admitPolicies[i].name
				y := admitPolicyYAML(i)
				if _, _, err := s.Apply("p.yaml", []byte(y)); err != nil {
					t.Fatalf("seed %d step %d: %s: %v\n%s", seed, step, what, err, y)
				}
				applied[i] = true
			case op < 3:
				i := slices.Sorted(maps.Keys(applied))[r.IntN(len(applied))]
				p := admitPolicies[i]
				what = "delete " + p.name
				if n, err := s.Delete("", p.namespace, p.name); err != nil || n != 1 {
					t.Fatalf("seed %d step %d: %s: %d, %v", seed, step, what, n, err)
				}
				delete(applied, i)
			case op < 4:
				addr := admitAddrs[r.IntN(len(admitAddrs))]
				what = "expire " + addr.String()
				names.remove(addr)
				if err := s.RefreshNames(); err != nil {
					t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
				}
			default:
				var addrs []netip.Addr
				for range 1 + r.IntN(3) {
					addrs = append(addrs, admitAddrs[r.IntN(len(admitAddrs))])
				}
				name := admitNames[r.IntN(len(admitNames))]
				what = fmt.Sprintf("answer %s %v", name, addrs)
				if err := s.AdmitNames(names.add(uint32(10+r.IntN(2)), name, addrs...)); err != nil {
					t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
				}
			}
			checkAdmittedEqualsFull(t, fmt.Sprintf("seed %d step %d (%s)", seed, step, what), s, a, names)
		}
		admits += a.admits
		recompiles += int(s.fqdn.recompiled.Load())
	}
	// About a third fall back here: the pool is rich in what Admit refuses
	// (a deny, addresses of names of several selectors, a toCIDR /32).
	t.Logf("%d incremental admissions, %d admissions by a recompile", admits, recompiles)
	if admits < 250 {
		t.Fatalf("%d incremental admissions (%d by a recompile): the incremental path is not taken", admits, recompiles)
	}
}

// checkAdmittedEqualsFull holds a's maps and the store's view against a
// full compile of the store's state.
func checkAdmittedEqualsFull(t *testing.T, at string, s *Store, a *mapsApplier, names *fakeNames) {
	t.Helper()
	s.mu.Lock()
	in := s.input(s.policies)
	s.mu.Unlock()
	in.Names = names.AllNames()
	full, err := compile.Compile(in)
	if err != nil {
		t.Fatalf("%s: full compile: %v", at, err)
	}
	if v := s.fqdn.view.Load(); v.compiled != a.inForce {
		t.Fatalf("%s: the store's view is not the policy in force", at)
	}
	want := kernelPolicy(full)
	for k, v := range want {
		if a.policy[k] != v {
			t.Errorf("%s: entry %+v is %q, a full compile gives %q", at, k, a.policy[k], v)
		}
	}
	for k, v := range a.policy {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: entry %+v (%q) is not a full compile's", at, k, v)
		}
	}
	if !maps.Equal(a.ipcache, full.IPCache) {
		t.Errorf("%s: ipcache\n%v\nfull compile:\n%v", at, a.ipcache, full.IPCache)
	}
	if !maps.Equal(a.flags, full.Flags) {
		t.Errorf("%s: probe flags %v, a full compile's %v", at, a.flags, full.Flags)
	}
	c := a.inForce
	if !maps.EqualFunc(c.FQDNAddrs, full.FQDNAddrs, slices.Equal) {
		t.Errorf("%s: FQDNAddrs %v, a full compile's %v", at, c.FQDNAddrs, full.FQDNAddrs)
	}
	if fmt.Sprint(c.Identities) != fmt.Sprint(full.Identities) {
		t.Errorf("%s: identities %v, a full compile's %v", at, c.Identities, full.Identities)
	}
	if !maps.Equal(kernelPolicy(c), want) {
		t.Errorf("%s: the policy in force differs from a full compile's", at)
	}
	if fmt.Sprint(c.DNS.ByEndpoint) != fmt.Sprint(full.DNS.ByEndpoint) {
		t.Errorf("%s: DNS rules %v, a full compile's %v", at, c.DNS.ByEndpoint, full.DNS.ByEndpoint)
	}
	for _, addr := range admitAddrs {
		if c.DNS.IdentityOf != nil && c.DNS.IdentityOf(addr) != full.IdentityOf(addr) {
			t.Errorf("%s: the DNS rules see %s as identity %d, a full compile's %d", at, addr, c.DNS.IdentityOf(addr), full.IdentityOf(addr))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
