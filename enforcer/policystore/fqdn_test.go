package policystore

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// fakeNames is a Names whose entries the test sets.
type fakeNames struct {
	mu      sync.Mutex
	entries []fqdn.Entry
}

func (n *fakeNames) AllNames() map[netip.Addr][]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[netip.Addr][]string{}
	for _, e := range n.entries {
		if !slices.Contains(out[e.Addr], e.Name) {
			out[e.Addr] = append(out[e.Addr], e.Name)
		}
	}
	return out
}

func (n *fakeNames) AddrNames(addrs []netip.Addr) map[netip.Addr][]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[netip.Addr][]string{}
	for _, e := range n.entries {
		if slices.Contains(addrs, e.Addr) && !slices.Contains(out[e.Addr], e.Name) {
			out[e.Addr] = append(out[e.Addr], e.Name)
		}
	}
	return out
}

func (n *fakeNames) add(ep uint32, name string, addrs ...netip.Addr) fqdn.Admission {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		n.entries = append(n.entries, fqdn.Entry{Endpoint: ep, Name: name, Addr: a})
	}
	return fqdn.Admission{Endpoint: ep, Name: name, Addrs: addrs, TTL: time.Minute}
}

func (n *fakeNames) remove(addr netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.entries = slices.DeleteFunc(n.entries, func(e fqdn.Entry) bool { return e.Addr == addr })
}

// slowApplier applies after a delay, counting, safe for concurrent use.
type slowApplier struct {
	fakeApplier
	mu    sync.Mutex
	delay time.Duration
}

func (s *slowApplier) ApplyPolicy(c *compile.Compiled) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fakeApplier.ApplyPolicy(c)
}

func (s *slowApplier) last() (*compile.Compiled, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[len(s.applied)-1], len(s.applied)
}

const fqdnPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: to-api, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`

func newFQDNStore(t *testing.T, delay time.Duration) (*Store, *slowApplier, *fakeNames) {
	t.Helper()
	a, names := &slowApplier{delay: delay}, &fakeNames{}
	s, err := New(Options{Applier: a, Endpoints: newTestEndpoints(t), Names: names})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Apply("p.yaml", []byte(fqdnPolicy)); err != nil {
		t.Fatal(err)
	}
	return s, a, names
}

// allows reports whether the compiled policy lets the frontend (id 10)
// reach addr on 443.
func allows(c *compile.Compiled, addr netip.Addr) bool {
	return c.Decide(10, c.IdentityOf(addr), policy.Egress, 6, 443).Verdict == policy.Allowed
}

func TestAdmittingANameRecompilesOnlyWhenItChangesThePolicy(t *testing.T) {
	s, a, names := newFQDNStore(t, 0)
	_, applies := a.last()
	rev := s.Revision()
	api := netip.MustParseAddr("198.51.100.7")
	if err := s.AdmitNames(names.add(10, "api.example.com.", api)); err != nil {
		t.Fatal(err)
	}
	c, n := a.last()
	if n != applies+1 || !allows(c, api) {
		t.Fatalf("after admitting api.example.com: %d applies (want %d), allowed %v", n, applies+1, allows(c, api))
	}
	if s.Revision() != rev {
		t.Fatalf("a DNS answer changed the store's revision from %d to %d", rev, s.Revision())
	}
	// The same answer again, another endpoint's, a name no selector selects:
	// nothing to recompile.
	for _, ad := range []fqdn.Admission{names.add(10, "api.example.com.", api), names.add(11, "api.example.com.", api),
		names.add(10, "other.org.", netip.MustParseAddr("198.51.100.8"))} {
		if err := s.AdmitNames(ad); err != nil {
			t.Fatal(err)
		}
	}
	if _, n2 := a.last(); n2 != n {
		t.Fatalf("answers that change nothing recompiled %d times", n2-n)
	}
	if !s.NamesInForce([]netip.Addr{api}) || s.NamesInForce([]netip.Addr{netip.MustParseAddr("198.51.100.8")}) {
		t.Fatal("NamesInForce")
	}
	// The name expires: access ends with the refresh.
	names.remove(api)
	if err := s.RefreshNames(); err != nil {
		t.Fatal(err)
	}
	if c, _ := a.last(); allows(c, api) {
		t.Fatal("an expired name's address is still allowed")
	}
}

func TestConcurrentAdmissionsShareRecompiles(t *testing.T) {
	s, a, names := newFQDNStore(t, 30*time.Millisecond)
	_, before := a.last()
	const answers = 24
	var wg sync.WaitGroup
	errs := make(chan error, answers)
	for i := range answers {
		wg.Go(func() {
			addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
			if err := s.AdmitNames(names.add(10, "n.example.com.", addr)); err != nil {
				errs <- err
				return
			}
			// Once admitted, the policy in force allows it.
			if c, _ := a.last(); !allows(c, addr) {
				t.Errorf("admission of %s returned before the policy allowed it", addr)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, after := a.last()
	if after-before >= answers/2 {
		t.Fatalf("%d concurrent admissions took %d recompiles, want them shared", answers, after-before)
	}
}

// gatedApplier holds an apply until the test lets it through, once it is
// armed.
type gatedApplier struct {
	slowApplier
	armed   atomic.Bool
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedApplier) ApplyPolicy(c *compile.Compiled) error {
	if g.armed.Load() {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.slowApplier.ApplyPolicy(c)
}

func TestNamesAdmittedTellsWithoutWaitingAndNeverDuringACommit(t *testing.T) {
	g := &gatedApplier{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	names := &fakeNames{}
	s, err := New(Options{Applier: g, Endpoints: newTestEndpoints(t), Names: names})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Apply("p.yaml", []byte(fqdnPolicy)); err != nil {
		t.Fatal(err)
	}
	api := netip.MustParseAddr("198.51.100.7")
	answer := names.add(10, "api.example.com.", api)
	if s.NamesAdmitted(answer) {
		t.Fatal("a new address of a toFQDNs name reported admitted before any recompile")
	}
	if err := s.AdmitNames(answer); err != nil {
		t.Fatal(err)
	}
	if !s.NamesAdmitted(answer) || !s.NamesAdmitted(names.add(10, "other.org.", netip.MustParseAddr("198.51.100.8"))) {
		t.Fatal("an admitted address, or a name no selector selects, reported not admitted")
	}
	// A recompile in progress (it may have read the names before an answer
	// was cached): nothing is reported admitted until it is in force.
	g.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.RefreshNames() }()
	<-g.entered
	if s.NamesAdmitted(answer) {
		t.Error("an address reported admitted while a recompile was in progress")
	}
	g.armed.Store(false)
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !s.NamesAdmitted(answer) {
		t.Error("the address is not reported admitted once the recompile is in force")
	}
}
