package policystore

import "testing"

// TestRefreshFollowsTheEndpoints: after an endpoint is removed, Refresh
// recompiles without it (its enforcement entry goes) and takes its id out
// of audit mode, so the id, if it comes back as another endpoint's, is
// enforced, not audited.
func TestRefreshFollowsTheEndpoints(t *testing.T) {
	a := &fakeApplier{}
	eps := newTestEndpoints(t)
	s, err := New(Options{Applier: a, Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Apply("web.yaml", []byte(storeTestPolicy)); err != nil {
		t.Fatal(err)
	}
	last := a.applied[len(a.applied)-1]
	if _, ok := last.Enforce[10]; !ok || !a.audit[10] {
		t.Fatalf("frontend (10) not enforced (%v) or not in audit mode (%v)", last.Enforce, a.audit)
	}
	rev := s.Revision()

	eps.eps = eps.eps[1:] // frontend, id 10, is removed
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	last = a.applied[len(a.applied)-1]
	if _, ok := last.Enforce[10]; ok {
		t.Errorf("the removed endpoint is still enforced: %v", last.Enforce)
	}
	if a.audit[10] {
		t.Error("the removed endpoint's id is still in audit mode")
	}
	if s.Revision() != rev+1 || len(s.List()) != 1 {
		t.Errorf("revision %d (was %d), %d policies: the applied set must stay, recompiled", s.Revision(), rev, len(s.List()))
	}
}
