package policystore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/discovery"
)

// cnpObject is a CiliumNetworkPolicy object of namespace default as a
// watcher reports it.
func cnpObject(name string) discovery.PolicyEvent {
	return discovery.PolicyEvent{Kind: discovery.Added, ObjectKind: "CiliumNetworkPolicy", Namespace: "default", Name: name,
		Source: []byte(`{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"` + name +
			`","namespace":"default"},"spec":{"endpointSelector":{"matchLabels":{"app":"frontend"}},"ingress":[{"fromEntities":["world"]}]}}`)}
}

func clientPolicy(name string) []byte {
	return []byte(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ` + name + `, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{fromEntities: [host]}]
`)
}

func names(s *Store) []string {
	var out []string
	for _, p := range s.List() {
		out = append(out, p.Name)
	}
	return out
}

// TestObjectsDeletedWhileNotWatchingAreRemovedAtSync restarts a store
// that kept policies from Kubernetes objects and a client's: the
// watcher's first listing (Synced) removes, in one change, those whose
// object is gone; the client's and those whose object is there stay.
func TestObjectsDeletedWhileNotWatchingAreRemovedAtSync(t *testing.T) {
	dir := t.TempDir()
	s := newTestStore(t, dir, &fakeApplier{})
	for _, name := range []string{"kept", "gone", "gone-too"} {
		if err := s.PolicyChanged(cnpObject(name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Apply("client.yaml", clientPolicy("by-hand")); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.List() {
		want := Origin{}
		if p.Name != "by-hand" {
			want = Origin{Source: OriginK8s, Kind: "CiliumNetworkPolicy", Namespace: "default", Name: p.Name}
		}
		if p.Origin != want {
			t.Errorf("%s: origin %+v, want %+v", p.Name, p.Origin, want)
		}
	}

	// The collector restarts; while it was down "gone" and "gone-too"
	// were deleted.
	a := &fakeApplier{}
	s = newTestStore(t, dir, a)
	if got := names(s); !slices.Equal(got, []string{"by-hand", "gone", "gone-too", "kept"}) {
		t.Fatalf("restored %v", got)
	}
	rev, applies := s.Revision(), len(a.applied)
	sync := discovery.PolicyEvent{Kind: discovery.Synced, Present: []discovery.PolicyObject{
		{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "kept"},
		{Kind: "NetworkPolicy", Namespace: "default", Name: "gone"}, // another kind's object of that name
	}}
	if err := s.PolicyChanged(sync); err != nil {
		t.Fatal(err)
	}
	if got := names(s); !slices.Equal(got, []string{"by-hand", "kept"}) {
		t.Errorf("after the sync: %v, want by-hand and kept", got)
	}
	if s.Revision() != rev+1 || len(a.applied) != applies+1 {
		t.Errorf("revision %d -> %d, applies %d -> %d: want one change", rev, s.Revision(), applies, len(a.applied))
	}
	// Nothing else to remove: no change.
	if err := s.PolicyChanged(sync); err != nil || s.Revision() != rev+1 {
		t.Errorf("a second sync: %v, revision %d", err, s.Revision())
	}
	// The removal persisted.
	if got := names(newTestStore(t, dir, &fakeApplier{})); !slices.Equal(got, []string{"by-hand", "kept"}) {
		t.Errorf("after another restart: %v", got)
	}
}

// TestPoliciesOfAnOldStateFileAreAClientsAtSync: a state directory of a
// version without origins loads every policy as a client's, which a sync
// never removes.
func TestPoliciesOfAnOldStateFileAreAClientsAtSync(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "CiliumNetworkPolicy_default_old.yaml"), clientPolicy("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, revisionsFile), []byte(`{"revision":4,"policies":{"CiliumNetworkPolicy/default/old":3}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, dir, &fakeApplier{})
	if got := s.List(); len(got) != 1 || got[0].Origin != (Origin{}) || got[0].Revision != 3 {
		t.Fatalf("loaded %+v, want old as a client's at revision 3", got)
	}
	if err := s.PolicyChanged(discovery.PolicyEvent{Kind: discovery.Synced}); err != nil {
		t.Fatal(err)
	}
	if got := names(s); !slices.Equal(got, []string{"old"}) {
		t.Errorf("after a sync listing nothing: %v", got)
	}
}
