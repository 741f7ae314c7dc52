package kubernetes

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/periscope-dev/periscope/discovery"
)

func policyObject(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

// runPolicies starts a policy watcher until the test ends; its sink
// refuses objects whose name starts with "refused".
func runPolicies(t *testing.T, dyn dynamic.Interface, cs kubernetes.Interface, node string) (*Policies, *events[discovery.PolicyEvent]) {
	t.Helper()
	p, err := NewPolicies(dyn, cs, Options{NodeName: node})
	if err != nil {
		t.Fatal(err)
	}
	evs := newEvents[discovery.PolicyEvent]()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, discovery.PolicyFunc(func(ev discovery.PolicyEvent) error {
			evs.ch <- ev
			if strings.HasPrefix(ev.Name, "refused") && ev.Kind != discovery.Deleted {
				return errUnsupported
			}
			return nil
		}))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("policy watcher: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("policy watcher did not stop within 30s")
		}
	})
	return p, evs
}

type refusal string

func (r refusal) Error() string { return string(r) }

const errUnsupported = refusal("toFQDNs is not enforced by Periscope: refused")

func policyOf(kind discovery.EventKind, objectKind, name string) func(discovery.PolicyEvent) bool {
	return func(ev discovery.PolicyEvent) bool {
		return ev.Kind == kind && ev.ObjectKind == objectKind && ev.Name == name
	}
}

func TestPolicyObjectsBecomePolicyEvents(t *testing.T) {
	srv, cs := apiServer(t)
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.InstallCiliumPolicyCRDs(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns := testName(t, "ns")
	createNamespace(t, cs, ns, nil)
	p, evs := runPolicies(t, dyn, cs, testName(t, "node"))
	ctx := context.Background()

	cnp := policyObject(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-frontend, namespace: `+ns+`}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`)
	ccnp := policyObject(t, `
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: `+ns+`-deny-all}
spec:
  endpointSelector: {matchLabels: {app: nothing}}
  ingress: [{}]
`)
	np := policyObject(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: `+ns+`}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
`)
	for _, tc := range []struct {
		obj  *unstructured.Unstructured
		kind PolicyKind
	}{{cnp, PolicyKinds[0]}, {ccnp, PolicyKinds[1]}, {np, PolicyKinds[2]}} {
		r := dyn.Resource(tc.kind.Resource)
		var ri dynamic.ResourceInterface = r
		if tc.kind.Namespaced {
			ri = r.Namespace(ns)
		}
		if _, err := ri.Create(ctx, tc.obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", tc.kind.Kind, err)
		}
		ev := evs.wait(t, tc.kind.Kind+" Added", eventTimeout, policyOf(discovery.Added, tc.kind.Kind, tc.obj.GetName()))
		var got map[string]any
		if err := json.Unmarshal(ev.Source, &got); err != nil {
			t.Fatalf("%s source: %v", tc.kind.Kind, err)
		}
		if got["kind"] != tc.kind.Kind || got["spec"] == nil || got["status"] != nil {
			t.Errorf("%s source: %s", tc.kind.Kind, ev.Source)
		}
		meta, _ := got["metadata"].(map[string]any)
		if meta["name"] != tc.obj.GetName() || meta["resourceVersion"] != nil || meta["managedFields"] != nil {
			t.Errorf("%s source metadata: %v", tc.kind.Kind, meta)
		}
		if tc.kind.Namespaced && (ev.Namespace != ns || meta["namespace"] != ns) {
			t.Errorf("%s namespace: event %q, source %v", tc.kind.Kind, ev.Namespace, meta["namespace"])
		}
	}

	// A change of the spec is an update; a change of the status is not.
	cnps := dyn.Resource(PolicyKinds[0].Resource).Namespace(ns)
	cur, err := cnps.Get(ctx, "allow-frontend", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ingress, _, _ := unstructured.NestedSlice(cur.Object, "spec", "ingress")
	ingress = append(ingress, map[string]any{"fromEndpoints": []any{map[string]any{"matchLabels": map[string]any{"app": "admin"}}}})
	if err := unstructured.SetNestedSlice(cur.Object, ingress, "spec", "ingress"); err != nil {
		t.Fatal(err)
	}
	if cur, err = cnps.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := evs.wait(t, "CNP Updated", eventTimeout, policyOf(discovery.Updated, "CiliumNetworkPolicy", "allow-frontend"))
	if !strings.Contains(string(ev.Source), `"admin"`) {
		t.Errorf("updated source lacks the new rule: %s", ev.Source)
	}
	if err := unstructured.SetNestedMap(cur.Object, map[string]any{"conditions": []any{}}, "status"); err != nil {
		t.Fatal(err)
	}
	if _, err := cnps.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	evs.none(t, "event after a status-only change", time.Second, policyOf(discovery.Updated, "CiliumNetworkPolicy", "allow-frontend"))

	// A refused object stays refused and gets a Warning Event.
	refused := policyObject(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: refused-fqdn, namespace: `+ns+`}
spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: example.com}]
`)
	if _, err := cnps.Create(ctx, refused, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	evs.wait(t, "refused CNP Added", eventTimeout, policyOf(discovery.Added, "CiliumNetworkPolicy", "refused-fqdn"))
	deadline := time.Now().Add(eventTimeout)
	for {
		list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "refused-fqdn").String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) > 0 {
			e := list.Items[0]
			if e.Reason != RefusedReason || e.Type != corev1.EventTypeWarning || e.Message != string(errUnsupported) ||
				e.InvolvedObject.Kind != "CiliumNetworkPolicy" || e.InvolvedObject.UID == "" {
				t.Errorf("refusal event: %+v", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Event reports the refused policy")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Deletes, of every kind.
	for _, tc := range []struct {
		kind      PolicyKind
		name      string
		namespace string
	}{{PolicyKinds[0], "allow-frontend", ns}, {PolicyKinds[1], ccnp.GetName(), ""}, {PolicyKinds[2], "db", ns}, {PolicyKinds[0], "refused-fqdn", ns}} {
		var ri dynamic.ResourceInterface = dyn.Resource(tc.kind.Resource)
		if tc.namespace != "" {
			ri = dyn.Resource(tc.kind.Resource).Namespace(tc.namespace)
		}
		if err := ri.Delete(ctx, tc.name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		ev := evs.wait(t, tc.kind.Kind+" Deleted", eventTimeout, policyOf(discovery.Deleted, tc.kind.Kind, tc.name))
		if len(ev.Source) == 0 {
			t.Errorf("%s Deleted without the last source", tc.kind.Kind)
		}
	}
	if n := p.Len(); n != 0 {
		t.Errorf("the watcher holds %d policies after all were deleted", n)
	}
}

// TestThePolicyWatcherListsWhatIsThereBeforeReportingIt: the first event is
// Synced, naming every object the API server has (so a sink can remove
// what was deleted while nobody watched), before any object's Added.
func TestThePolicyWatcherListsWhatIsThereBeforeReportingIt(t *testing.T) {
	srv, cs := apiServer(t)
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.InstallCiliumPolicyCRDs(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns := testName(t, "ns")
	createNamespace(t, cs, ns, nil)
	cnp := policyObject(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: there-before, namespace: `+ns+`}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress: [{fromEntities: [host]}]
`)
	if _, err := dyn.Resource(PolicyKinds[0].Resource).Namespace(ns).Create(context.Background(), cnp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, evs := runPolicies(t, dyn, cs, testName(t, "node"))
	first := evs.wait(t, "the first event", eventTimeout, func(discovery.PolicyEvent) bool { return true })
	want := discovery.PolicyObject{Kind: "CiliumNetworkPolicy", Namespace: ns, Name: "there-before"}
	if first.Kind != discovery.Synced || !slices.Contains(first.Present, want) {
		t.Fatalf("first event %+v, want Synced naming %+v", first, want)
	}
	evs.wait(t, "there-before Added", eventTimeout, policyOf(discovery.Added, "CiliumNetworkPolicy", "there-before"))
}
