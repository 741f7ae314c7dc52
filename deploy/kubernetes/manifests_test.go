// Package deploy_test checks the Kubernetes manifests against a real API
// server: they are accepted by a server-side dry run, and the collector's
// RBAC grants exactly what its watchers use.
package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/periscope-dev/periscope/discovery"
	k8sdiscovery "github.com/periscope-dev/periscope/discovery/kubernetes"
	"github.com/periscope-dev/periscope/discovery/kubernetes/kubetest"
)

// manifests reads every object of the directory's YAML files, in the order
// `kubectl apply -f deploy/kubernetes/` applies them.
func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj != nil {
				out = append(out, &unstructured.Unstructured{Object: obj})
			}
		}
	}
	return out
}

// apply applies obj with server-side apply, as `kubectl apply
// --server-side [--dry-run=server]` does.
func apply(ctx context.Context, cfg *rest.Config, obj *unstructured.Unstructured, dryRun bool) error {
	dc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc.Discovery()))
	gvk := obj.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if ns := obj.GetNamespace(); ns != "" {
		ri = dyn.Resource(m.Resource).Namespace(ns)
	}
	opts := metav1.ApplyOptions{FieldManager: "periscope-manifests-test", Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Apply(ctx, obj.GetName(), obj, opts)
	return err
}

func TestManifestsAreAcceptedByAServerSideDryRun(t *testing.T) {
	srv := kubetest.New(t)
	ctx := context.Background()
	objs := manifests(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for kind, want := range map[string]int{"Namespace": 1, "ServiceAccount": 2, "ClusterRole": 1, "ClusterRoleBinding": 1, "DaemonSet": 1, "Deployment": 1, "Service": 1, "ConfigMap": 1} {
		if kinds[kind] != want {
			t.Errorf("%d %s objects, want %d", kinds[kind], kind, want)
		}
	}
	// A dry run in a namespace that does not exist fails: the namespace
	// is made for real first, as `kubectl apply -f` of the directory does.
	if err := apply(ctx, srv.Config, objs[0], false); err != nil {
		t.Fatalf("apply %s %s: %v", objs[0].GetKind(), objs[0].GetName(), err)
	}
	for _, o := range objs {
		if err := apply(ctx, srv.Config, o, true); err != nil {
			t.Errorf("dry run of %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func TestCollectorDaemonSetIsNotPrivileged(t *testing.T) {
	for _, o := range manifests(t) {
		if o.GetKind() != "DaemonSet" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if len(containers) != 1 {
			t.Fatalf("%d containers in the DaemonSet", len(containers))
		}
		c := containers[0].(map[string]any)
		if p, _, _ := unstructured.NestedBool(c, "securityContext", "privileged"); p {
			t.Error("the collector is privileged")
		}
		add, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "add")
		drop, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop")
		slices.Sort(add)
		if !slices.Equal(add, []string{"BPF", "NET_ADMIN", "PERFMON"}) || !slices.Equal(drop, []string{"ALL"}) {
			t.Errorf("capabilities: add %v, drop %v", add, drop)
		}
		if hn, _, _ := unstructured.NestedBool(o.Object, "spec", "template", "spec", "hostNetwork"); !hn {
			t.Error("the collector is not on the host network")
		}
		ann, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] == "" {
			t.Errorf("no Prometheus scrape annotation: %v", ann)
		}
	}
}

// The collector's service account, with the RBAC of the manifests applied
// for real, runs both watchers and reports a refused policy; it can do
// nothing the watchers do not.
func TestCollectorRBACGrantsWhatTheWatchersUse(t *testing.T) {
	srv := kubetest.New(t)
	ctx := context.Background()
	if err := srv.InstallCiliumPolicyCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, o := range manifests(t) {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
			if err := apply(ctx, srv.Config, o, false); err != nil {
				t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	admin, err := kubernetes.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	asCollector := rest.CopyConfig(srv.Config)
	asCollector.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:periscope:periscope-collector"}
	cs, err := kubernetes.NewForConfig(asCollector)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(asCollector)
	if err != nil {
		t.Fatal(err)
	}
	const node = "rbac-node"
	pods, err := k8sdiscovery.NewPods(cs, k8sdiscovery.Options{NodeName: node})
	if err != nil {
		t.Fatal(err)
	}
	policies, err := k8sdiscovery.NewPolicies(dyn, cs, k8sdiscovery.Options{NodeName: node})
	if err != nil {
		t.Fatal(err)
	}
	endpoints := make(chan discovery.EndpointEvent, 100)
	policyEvents := make(chan discovery.PolicyEvent, 100)
	runCtx, cancel := context.WithCancel(ctx)
	errs := make(chan error, 2)
	go func() {
		errs <- pods.Run(runCtx, discovery.EndpointFunc(func(ev discovery.EndpointEvent) { endpoints <- ev }))
	}()
	go func() {
		errs <- policies.Run(runCtx, discovery.PolicyFunc(func(ev discovery.PolicyEvent) error {
			policyEvents <- ev
			return errors.New("refused by the test")
		}))
	}()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("watcher: %v", err)
			}
		}
	})

	// A pod of the node, seen through the collector's eyes.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rbac-pod"},
		Spec:       corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "periscope:dev"}}},
	}
	if pod, err = admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}}
	if _, err := admin.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-endpoints:
		if ev.Endpoint.Name != "rbac-pod" {
			t.Errorf("endpoint event: %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no endpoint event for the pod")
	}

	// A NetworkPolicy, refused: the collector's account writes the Event.
	np := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
		"metadata": map[string]any{"name": "rbac-np", "namespace": "default"},
		"spec":     map[string]any{"podSelector": map[string]any{}},
	}}
	adminDyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminDyn.Resource(k8sdiscovery.PolicyKinds[2].Resource).Namespace("default").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-policyEvents:
	case <-time.After(30 * time.Second):
		t.Fatal("no policy event for the NetworkPolicy")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(list.Items, func(e corev1.Event) bool {
			return e.InvolvedObject.Name == "rbac-np" && e.Reason == k8sdiscovery.RefusedReason
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the collector's account wrote no Event on the refused policy")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Nothing more: no get, no writes to what it watches.
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "rbac-pod", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("the collector's account may get a pod (%v)", err)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "rbac-pod", metav1.DeleteOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("the collector's account may delete a pod (%v)", err)
	}
	if _, err := cs.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("the collector's account may list secrets")
	}
}
