package collector

import (
	"errors"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/compile"
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

func newTestStore(t *testing.T, dir string, a *fakeApplier) *PolicyStore {
	t.Helper()
	topo := testTopology()
	topo.Endpoints[0].Config.Audit = true
	reg, err := NewRegistry(topo)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewPolicyStore(PolicyStoreOptions{Dir: dir, Applier: a, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPolicyStoreAppliesPersistsAndRestores(t *testing.T) {
	dir := t.TempDir()
	a := &fakeApplier{}
	s := newTestStore(t, dir, a)
	if len(a.applied) != 1 || !a.audit[testTopology().Endpoints[0].HostIfIndex] {
		t.Fatalf("on start: applied %d, audit %v", len(a.applied), a.audit)
	}
	if _, err := s.Apply("web.yaml", []byte(storeTestPolicy)); err != nil {
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

	a2 := &fakeApplier{}
	s2 := newTestStore(t, dir, a2)
	if got := s2.Get("default", "web"); len(got) != 1 || !strings.Contains(got[0].YAML, "frontend") {
		t.Fatalf("after restart: %+v", got)
	}
	if n, err := s2.Delete("", "default", "web"); n != 1 || err != nil {
		t.Fatalf("delete: %d %v", n, err)
	}
	if got := newTestStore(t, dir, &fakeApplier{}).List(); len(got) != 0 {
		t.Errorf("deleted policy restored: %+v", got)
	}
}

func TestPolicyStoreRefusesABadChangeWhole(t *testing.T) {
	a := &fakeApplier{}
	s := newTestStore(t, "", a)
	if _, err := s.Apply("web.yaml", []byte(storeTestPolicy)); err != nil {
		t.Fatal(err)
	}
	n := len(a.applied)
	bad := strings.Replace(storeTestPolicy, "web", "other", 1) + "---\n" + strings.Replace(storeTestPolicy, "world", "nowhere", 1)
	_, err := s.Apply("bad.yaml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") {
		t.Fatalf("bad apply: %v, want a bad.yaml:line:column error", err)
	}
	if len(a.applied) != n || len(s.List()) != 1 {
		t.Errorf("a refused change was applied: %d applies, %+v", len(a.applied), s.List())
	}
	a.fail = true
	if _, err := s.Apply("x.yaml", []byte(strings.Replace(storeTestPolicy, "web", "x", 1))); err == nil {
		t.Fatal("apply succeeded though the kernel refused")
	}
	if len(s.List()) != 1 {
		t.Errorf("kernel-refused policy kept: %+v", s.List())
	}
}
