package policystore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api/agentevent"
)

// Only changes that took effect are events: a refused apply or delete is
// none.
func TestTheStoreAppendsAnEventPerChangeInForce(t *testing.T) {
	a := &fakeApplier{}
	log := agentevent.NewLog("n", 0)
	s, err := New(Options{Applier: a, Endpoints: newTestEndpoints(t), Events: log})
	if err != nil {
		t.Fatal(err)
	}
	two := storeTestPolicy + "---\n" + strings.Replace(storeTestPolicy, "web", "api", 1)
	if _, _, err := s.Apply("two.yaml", []byte(two)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Apply("bad.yaml", []byte(strings.Replace(storeTestPolicy, "world", "nowhere", 1))); err == nil {
		t.Fatal("a bad policy was applied")
	}
	a.fail = true
	if _, err := s.Delete("", "default", "web"); err == nil {
		t.Fatal("a delete the kernel refused succeeded")
	}
	a.fail = false
	if _, err := s.Delete("", "default", "web"); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = log.Read(context.Background(), agentevent.Query{}, func(e *agentevent.Event) error {
		got = append(got, fmt.Sprintf("%s %s %d", e.Type, e.Policy.Labels[1], e.Policy.Revision))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POLICY_UPDATED k8s:io.cilium.k8s.policy.name=web 2",
		"POLICY_UPDATED k8s:io.cilium.k8s.policy.name=api 2",
		"POLICY_DELETED k8s:io.cilium.k8s.policy.name=web 3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
