package policystore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// fakeL7 records the L7 port sets applied, with the kernel's applies in
// between, in one log.
type fakeL7 struct {
	log  *[]string
	fail bool
}

func (f *fakeL7) ApplyL7(_ context.Context, ports []compile.L7Port) error {
	if f.fail {
		return errors.New("envoy says no")
	}
	var names []string
	for _, p := range ports {
		names = append(names, fmt.Sprintf("%d/%s/%d", p.Endpoint, p.Direction, p.Port))
	}
	*f.log = append(*f.log, "l7["+strings.Join(names, " ")+"]")
	return nil
}

// loggingApplier logs kernel applies into the same log.
type loggingApplier struct {
	fakeApplier
	log *[]string
}

func (a *loggingApplier) ApplyPolicy(c *compile.Compiled) error {
	if err := a.fakeApplier.ApplyPolicy(c); err != nil {
		return err
	}
	*a.log = append(*a.log, "kernel")
	return nil
}

// l7TestPolicy lets frontend GET /public/... of backend's port (ingress).
func l7TestPolicy(name, port string) string {
	return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ` + name + `, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend, k8s:io.kubernetes.pod.namespace: default}}]
    toPorts: [{ports: [{port: '` + port + `', protocol: TCP}], rules: {http: [{method: GET, path: '/public/.*'}]}}]
`
}

func TestL7PolicyAppliesAroundTheKernel(t *testing.T) {
	var log []string
	a := &loggingApplier{log: &log}
	l7 := &fakeL7{log: &log}
	s, err := New(Options{Applier: a, Endpoints: newTestEndpoints(t), L7: l7})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"no L7 rules: the proxy is not asked", func() error { _, _, err := s.Apply("a.yaml", []byte(storeTestPolicy)); return err },
			"kernel"},
		{"L7 rules on 80: the proxy redirects before the kernel allows", func() error { _, _, err := s.Apply("b.yaml", []byte(l7TestPolicy("web", "80"))); return err },
			"l7[11/ingress/80] kernel l7[11/ingress/80]"},
		{"moved to 8080: both ports until the kernel changed, then 8080 only", func() error { _, _, err := s.Apply("b.yaml", []byte(l7TestPolicy("web", "8080"))); return err },
			"l7[11/ingress/8080 11/ingress/80] kernel l7[11/ingress/8080]"},
		{"removed: the kernel first, then the redirect goes", func() error { _, err := s.Delete("", "shop", "web"); return err },
			"l7[11/ingress/8080] kernel l7[]"},
	}
	for _, st := range steps {
		log = nil
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := strings.Join(log, " "); got != st.want {
			t.Errorf("%s: %s, want %s", st.name, got, st.want)
		}
	}
	// A kernel that refuses: the proxy goes back to the set in force.
	a.fail = true
	log = nil
	if _, _, err := s.Apply("c.yaml", []byte(l7TestPolicy("web", "80"))); err == nil {
		t.Fatal("a refused kernel apply succeeded")
	}
	if got := strings.Join(log, " "); got != "l7[11/ingress/80] l7[]" {
		t.Errorf("after a refused kernel apply: %s, want the union then the set in force", got)
	}
	// A proxy that refuses: the kernel is not touched.
	a.fail, l7.fail = false, true
	log = nil
	if _, _, err := s.Apply("c.yaml", []byte(l7TestPolicy("web", "80"))); err == nil || !strings.Contains(err.Error(), "apply L7 policy") {
		t.Fatalf("a refused L7 apply: %v", err)
	}
	if len(log) != 0 {
		t.Errorf("after a refused L7 apply: %v", log)
	}
}

func TestL7RulesWithoutAProxyAreRefused(t *testing.T) {
	a := &fakeApplier{}
	s := newTestStore(t, "", a)
	_, _, err := s.Apply("b.yaml", []byte(l7TestPolicy("web", "80")))
	if err == nil || !strings.Contains(err.Error(), "L7 rules (rules.http) of shop/web need the L7 proxy: run the collector with --envoy") {
		t.Fatalf("error %v", err)
	}
	if len(a.applied) != 1 { // the empty set at New only
		t.Fatalf("%d applies reached the kernel", len(a.applied))
	}
}
