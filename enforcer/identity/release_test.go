package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReleaseForgetsWhatNoEndpointUsedWithinTheGrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities.json")
	a, err := NewAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := a.Allocate(NewLabels("k8s:app=kept"))
	gone, _ := a.Allocate(NewLabels("k8s:app=gone"))
	recent, _ := a.Allocate(NewLabels("k8s:app=recent"))
	t0 := time.Now()

	// Within the grace nothing goes; "kept" and "gone" are used at t0.
	if r, err := a.Release([]ID{kept, gone, World}, time.Hour, t0); err != nil || len(r) != 0 {
		t.Fatalf("Release at t0 = %v, %v; want nothing", r, err)
	}
	// "recent" is used later; at t0+70m only "gone" (last used at t0) is
	// past the grace.
	if r, err := a.Release([]ID{kept, recent}, time.Hour, t0.Add(50*time.Minute)); err != nil || len(r) != 0 {
		t.Fatalf("Release at t0+50m = %v, %v; want nothing", r, err)
	}
	r, err := a.Release([]ID{kept}, time.Hour, t0.Add(70*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 1 || r[0].ID != gone || r[0].Labels.String() != "k8s:app=gone" {
		t.Fatalf("released %v, want only %d (k8s:app=gone)", r, gone)
	}
	if _, ok := a.Lookup(gone); ok {
		t.Errorf("released id %d still looks up", gone)
	}

	// The state file forgot it too, and keeps when the rest were used.
	b, err := NewAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Lookup(gone); ok {
		t.Errorf("id %d is back after a restart", gone)
	}
	if r, _ := b.Release(nil, time.Hour, t0.Add(115*time.Minute)); len(r) != 1 || r[0].ID != recent {
		t.Errorf("after a restart, released %v; want %d, last used at t0+50m, alone", r, recent)
	}
	// A label set that comes back gets its preferred id again.
	if id, _ := b.Allocate(NewLabels("k8s:app=gone")); id != gone {
		t.Errorf("k8s:app=gone came back as %d, want %d", id, gone)
	}
}

func TestReleaseFreesACollidingIDForItsOwner(t *testing.T) {
	x, y := collidingPair(t)
	a, _ := NewAllocator("")
	idY, _ := a.Allocate(y) // y takes x's preferred id
	now := time.Now()
	if r, _ := a.Release(nil, time.Minute, now.Add(2*time.Minute)); len(r) != 1 || r[0].ID != idY {
		t.Fatalf("released %v, want y's %d", r, idY)
	}
	if idX, _ := a.Allocate(x); idX != PreferredID(x) {
		t.Errorf("x = %d, want its preferred %d once y is gone", idX, PreferredID(x))
	}
	if c := a.Collisions(); len(c) != 0 {
		t.Errorf("collisions %v, want none", c)
	}
}

func TestReleaseKeepsEverythingWhenTheStateCannotBeWritten(t *testing.T) {
	dir := t.TempDir()
	a, err := NewAllocator(filepath.Join(dir, "identities.json"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := a.Allocate(NewLabels("k8s:app=x"))
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if os.Geteuid() == 0 {
		// root writes anyway: make the state path a directory instead.
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		a.path = filepath.Join(dir, "no", "such", "dir", "identities.json")
	}
	_, err = a.Release(nil, 0, time.Now().Add(time.Second))
	if err == nil || !strings.Contains(err.Error(), "release 1 identities") {
		t.Fatalf("Release with an unwritable state = %v, want an error naming it", err)
	}
	if _, ok := a.Lookup(id); !ok {
		t.Error("an identity was forgotten although the state file still has it")
	}
}

func TestReleaseRejectsANegativeGrace(t *testing.T) {
	a, _ := NewAllocator("")
	if _, err := a.Release(nil, -time.Second, time.Now()); err == nil {
		t.Error("negative grace accepted")
	}
}
