package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/periscope-dev/periscope/api/policyapi"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/discovery/kubernetes/kubetest"
)

// TestCollectorLearnsPodsAndPoliciesWithKubeconfig runs the binary with
// --kubeconfig against a real API server: a pod of its node (--node-name)
// created through the API becomes an endpoint (GET /api/v1/endpoints, with
// its Kubernetes labels and source k8s), a CiliumNetworkPolicy is in the
// policy store, and both go when deleted.
func TestCollectorLearnsPodsAndPoliciesWithKubeconfig(t *testing.T) {
	labtest.RequireRoot(t)
	srv := kubetest.New(t)
	if err := srv.InstallCiliumPolicyCRDs(t.Context()); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	lab := labtest.NewLab(t)
	web, err := lab.AddPod(netlab.PodSpec{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	bin := periscopetest.Build(t)
	c := periscopetest.StartCollector(t, bin, nil, "--kubeconfig", srv.Kubeconfig, "--node-name", "node-k",
		"--hubble-listen", "", "--ui=false", "--sock-events=false")
	base := c.URL

	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-k", ServiceAccountName: "default",
			Containers: []corev1.Container{{Name: "main", Image: "periscope:dev"}}},
	}
	if pod, err = cs.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIPs = []corev1.PodIP{{IP: web.IPv4.String()}}
	if _, err := cs.CoreV1().Pods("shop").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	endpoints := func() []collector.EndpointStatus {
		var eps []collector.EndpointStatus
		getInto(t, base+collector.EndpointsPath, &eps)
		return eps
	}
	waitFor(t, 30*time.Second, "the pod as an endpoint", func() bool {
		eps := endpoints()
		return len(eps) == 1 && eps[0].Name == "web" && eps[0].Namespace == "shop" && eps[0].Source == "k8s" &&
			eps[0].Interface == web.HostVeth.Name && slices.Contains(eps[0].Labels, "k8s:app=web")
	})

	cnp := schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"name": "web-in", "namespace": "shop"},
		"spec": map[string]any{"endpointSelector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"ingress": []any{map[string]any{"fromEntities": []any{"cluster"}}}},
	}}
	if _, err := dyn.Resource(cnp).Namespace("shop").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policies := func() []policyapi.Policy {
		var ps []policyapi.Policy
		getInto(t, base+policyapi.PoliciesPath, &ps)
		return ps
	}
	waitFor(t, 30*time.Second, "the CiliumNetworkPolicy in force", func() bool {
		ps := policies()
		return len(ps) == 1 && ps[0].Name == "web-in" && ps[0].Kind == "CiliumNetworkPolicy"
	})
	if err := dyn.Resource(cnp).Namespace("shop").Delete(ctx, "web-in", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the policy removed", func() bool { return len(policies()) == 0 })
	zero := int64(0) // no kubelet here to end it gracefully
	if err := cs.CoreV1().Pods("shop").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the endpoint removed", func() bool { return len(endpoints()) == 0 })
}

// getInto decodes the JSON answer of GET u into v.
func getInto(t testing.TB, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
}

// waitFor polls cond every 50 ms until it holds, or fails after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
