package identity

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestReservedIdentitiesKeepCiliumNumbers(t *testing.T) {
	a, err := NewAllocator("")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]ID{"host": 1, "world": 2, "unmanaged": 3, "health": 4,
		"init": 5, "remote-node": 6, "kube-apiserver": 7, "ingress": 8} {
		got, err := a.Allocate(Labels{"reserved:" + name})
		if err != nil || got != want {
			t.Errorf("reserved:%s = %d, %v; want %d", name, got, err, want)
		}
	}
}

func TestSameLabelsGetTheSameIDInAnyOrderAndOnAnyNode(t *testing.T) {
	a, _ := NewAllocator("")
	b, _ := NewAllocator("")
	x, err := a.Allocate(Labels{"k8s:io.kubernetes.pod.namespace=ns", "k8s:app=frontend"})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := b.Allocate(Labels{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=ns", "k8s:app=frontend"})
	if x != y || x != PreferredID(NewLabels("k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=ns")) {
		t.Fatalf("ids differ: %d %d", x, y)
	}
	if x < MinCluster || x > MaxCluster {
		t.Fatalf("id %d outside the cluster range", x)
	}
	if l, ok := a.Lookup(x); !ok || l.String() != "k8s:app=frontend,k8s:io.kubernetes.pod.namespace=ns" {
		t.Fatalf("Lookup = %v %v", l, ok)
	}
}

// collidingPair finds two label sets with the same preferred id.
func collidingPair(t *testing.T) (Labels, Labels) {
	seen := map[ID]Labels{}
	for i := 0; ; i++ {
		l := Labels{fmt.Sprintf("k8s:app=a%d", i)}
		if prev, ok := seen[PreferredID(l)]; ok {
			return prev, l
		}
		seen[PreferredID(l)] = l
	}
}

func TestCollisionsProbeTheNextFreeIDAndAreReported(t *testing.T) {
	x, y := collidingPair(t)
	a, _ := NewAllocator("")
	idX, _ := a.Allocate(x)
	idY, _ := a.Allocate(y)
	if idX != PreferredID(x) || idY != idX+1 && !(idX == MaxCluster && idY == MinCluster) {
		t.Fatalf("x=%d y=%d preferred %d", idX, idY, PreferredID(x))
	}
	c := a.Collisions()
	if len(c) != 1 || c[0].ID != idY {
		t.Fatalf("Collisions = %v", c)
	}
	// Another node seeing them in the other order disagrees: the documented
	// limit of coordination-free allocation.
	b, _ := NewAllocator("")
	bY, _ := b.Allocate(y)
	bX, _ := b.Allocate(x)
	if bY != idX || bX != idY {
		t.Fatalf("reverse order: x=%d y=%d", bX, bY)
	}
}

func TestAllocationsSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities.json")
	x, y := collidingPair(t)
	a, err := NewAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	idY, _ := a.Allocate(y) // y first: it takes the preferred id
	idX, _ := a.Allocate(x)
	b, err := NewAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	// After a restart x arrives first, yet keeps its persisted id.
	if got, _ := b.Allocate(x); got != idX {
		t.Fatalf("x after restart = %d, want %d", got, idX)
	}
	if got, _ := b.Allocate(y); got != idY {
		t.Fatalf("y after restart = %d, want %d", got, idY)
	}
	if n := len(b.List()); n != 8+2 {
		t.Fatalf("List has %d identities", n)
	}
}

func TestBadLabelsAreRejected(t *testing.T) {
	a, _ := NewAllocator("")
	for _, l := range []Labels{nil, {"app=x"}, {":x"}, {"k8s:"}} {
		if _, err := a.Allocate(l); err == nil {
			t.Errorf("Allocate(%q) succeeded", l)
		}
	}
}
