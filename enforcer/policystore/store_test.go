package policystore

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// fakeApplier records what the store applies.
type fakeApplier struct {
	applied []*compile.Compiled
	audit   map[uint32]bool
	fail    bool
}

func (f *fakeApplier) ApplyPolicy(c *compile.Compiled) error {
	if f.fail {
		return errors.New("kernel says no")
	}
	f.applied = append(f.applied, c)
	return nil
}

func (f *fakeApplier) SetPolicyAudit(ep uint32, audit bool) error {
	if f.audit == nil {
		f.audit = map[uint32]bool{}
	}
	f.audit[ep] = audit
	return nil
}

const storeTestPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{fromEntities: [world]}]
`

// testEndpoints is a node of two endpoints, frontend (id 10, in audit mode)
// and backend (id 11), with identities from a real allocator.
type testEndpoints struct {
	eps   []Endpoint
	hosts []netip.Addr
	ids   *identity.Allocator
}

func (e *testEndpoints) PolicyEndpoints() []Endpoint     { return e.eps }
func (e *testEndpoints) HostAddrs() []netip.Addr         { return e.hosts }
func (e *testEndpoints) Identities() []identity.Identity { return e.ids.List() }
func (e *testEndpoints) RemoteNodes() []netip.Prefix     { return nil }

func newTestEndpoints(t *testing.T) *testEndpoints {
	t.Helper()
	ids, err := identity.NewAllocator("")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEndpoints{ids: ids, hosts: []netip.Addr{netip.MustParseAddr("198.19.0.1")}}
	for _, ep := range []Endpoint{
		{Name: "frontend-7d4", ID: 10, Namespace: "default", Audit: true,
			Labels: []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=default", "k8s:tier=web"},
			IPs:    []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd00::2")}},
		{Name: "backend", ID: 11, Namespace: "shop",
			Labels: []string{"k8s:io.kubernetes.pod.namespace=shop"},
			IPs:    []netip.Addr{netip.MustParseAddr("198.18.0.3")}},
	} {
		id, err := ids.Allocate(identity.NewLabels(ep.Labels...))
		if err != nil {
			t.Fatal(err)
		}
		ep.Identity = uint32(id)
		e.eps = append(e.eps, ep)
	}
	return e
}

func newTestStore(t *testing.T, dir string, a *fakeApplier) *Store {
	t.Helper()
	s, err := New(Options{Dir: dir, Applier: a, Endpoints: newTestEndpoints(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTheStoreAppliesPersistsAndRestores(t *testing.T) {
	dir := t.TempDir()
	a := &fakeApplier{}
	s := newTestStore(t, dir, a)
	if len(a.applied) != 1 || !a.audit[10] {
		t.Fatalf("on start: applied %d, audit %v", len(a.applied), a.audit)
	}
	if _, _, err := s.Apply("web.yaml", []byte(storeTestPolicy)); err != nil {
		t.Fatal(err)
	}
	if got := s.Get("default", "web"); len(got) != 1 || got[0].YAML != storeTestPolicy {
		t.Errorf("get: YAML not as applied: %+v", got)
	}
	if got := s.List(); len(got) != 1 || got[0].Name != "web" || got[0].Revision != 2 {
		t.Fatalf("list: %+v", got)
	}
	last := a.applied[len(a.applied)-1]
	if len(last.Enforce) == 0 {
		t.Errorf("compiled policy selects no endpoint: %+v", last)
	}
	web := policy.ID{Kind: policy.KindCNP, Namespace: "default", Name: "web"}
	if got := last.Revisions[web]; got != 2 {
		t.Errorf("compiled revision of %v: %d, want 2 (flows name it)", web, got)
	}

	a2 := &fakeApplier{}
	s2 := newTestStore(t, dir, a2)
	if got := s2.Get("default", "web"); len(got) != 1 || !strings.Contains(got[0].YAML, "frontend") {
		t.Fatalf("after restart: %+v", got)
	}
	if got := s2.List(); got[0].Revision != 2 || s2.Revision() != 3 {
		t.Errorf("after restart: policy revision %d, store revision %d; want 2 and 3 (restored, then one apply)", got[0].Revision, s2.Revision())
	}
	if got := a2.applied[len(a2.applied)-1].Revisions[web]; got != 2 {
		t.Errorf("after restart: compiled revision of %v: %d, want 2", web, got)
	}
	if n, err := s2.Delete("", "default", "web"); n != 1 || err != nil {
		t.Fatalf("delete: %d %v", n, err)
	}
	if got := newTestStore(t, dir, &fakeApplier{}).List(); len(got) != 0 {
		t.Errorf("deleted policy restored: %+v", got)
	}
}

func TestTheStoreRefusesABadChangeWhole(t *testing.T) {
	a := &fakeApplier{}
	s := newTestStore(t, "", a)
	if _, _, err := s.Apply("web.yaml", []byte(storeTestPolicy)); err != nil {
		t.Fatal(err)
	}
	n := len(a.applied)
	bad := strings.Replace(storeTestPolicy, "web", "other", 1) + "---\n" + strings.Replace(storeTestPolicy, "world", "nowhere", 1)
	_, _, err := s.Apply("bad.yaml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") {
		t.Fatalf("bad apply: %v, want a bad.yaml:line:column error", err)
	}
	if len(a.applied) != n || len(s.List()) != 1 {
		t.Errorf("a refused change was applied: %d applies, %+v", len(a.applied), s.List())
	}
	a.fail = true
	if _, _, err := s.Apply("x.yaml", []byte(strings.Replace(storeTestPolicy, "web", "x", 1))); err == nil {
		t.Fatal("apply succeeded though the kernel refused")
	}
	if len(s.List()) != 1 {
		t.Errorf("kernel-refused policy kept: %+v", s.List())
	}
}

func TestTheStoreCompilesAgainstTheNodesEndpoints(t *testing.T) {
	eps := newTestEndpoints(t)
	eps.eps = append(eps.eps, Endpoint{Name: "no-veth", Namespace: "default", Identity: 4242,
		Labels: []string{"k8s:app=frontend"}, IPs: []netip.Addr{netip.MustParseAddr("198.18.0.9")}})
	remote, err := eps.ids.Allocate(identity.NewLabels("k8s:app=remote", "k8s:io.kubernetes.pod.namespace=default"))
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeApplier{}
	s, err := New(Options{Applier: a, Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	allowRemote := strings.Replace(storeTestPolicy, "{fromEntities: [world]}", "{fromEndpoints: [{matchLabels: {app: remote}}]}", 1)
	if _, _, err := s.Apply("web.yaml", []byte(allowRemote)); err != nil {
		t.Fatal(err)
	}
	c := a.applied[len(a.applied)-1]
	if len(c.Enforce) != 2 || !c.Enforce[10].Ingress || c.Enforce[11].Ingress {
		t.Errorf("enforcement %+v, want endpoints 10 (default deny at ingress) and 11 only", c.Enforce)
	}
	for addr, want := range map[string]uint32{
		"198.19.0.1/32": uint32(identity.Host),
		"198.18.0.2/32": eps.eps[0].Identity,
		"fd00::2/128":   eps.eps[0].Identity,
	} {
		if got, ok := c.IPCache[netip.MustParsePrefix(addr)]; !ok || got != want {
			t.Errorf("ipcache %s: %d (%v), want %d", addr, got, ok, want)
		}
	}
	if _, ok := c.IPCache[netip.MustParsePrefix("198.18.0.9/32")]; ok {
		t.Error("an endpoint without a host interface is in the ipcache")
	}
	found := false
	for k, v := range c.Policy {
		if k.Endpoint == 10 && k.Identity == uint32(remote) && v.Action == compile.Allow {
			found = true
		}
	}
	if !found {
		t.Errorf("no allow entry for identity %d, which only the allocator knows: %+v", remote, c.Policy)
	}
}

// A stored policy this version refuses stops the store from opening, with
// the file named: dropping it could open what it isolated.
func TestAStoredPolicyThatIsRefusedIsNamed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "default-empty.yaml")
	refused := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: empty, namespace: default}\nspec:\n  endpointSelector: {}\n  ingress: []\n"
	if err := os.WriteFile(path, []byte(refused), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Dir: dir, Applier: &fakeApplier{}, Endpoints: newTestEndpoints(t)})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "edit or remove") {
		t.Fatalf("New with a refused stored policy: %v", err)
	}
}
