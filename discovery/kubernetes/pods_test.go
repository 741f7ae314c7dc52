package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/discovery"
)

const eventTimeout = 30 * time.Second

func createNamespace(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

type podSpec struct {
	namespace, name, node, serviceAccount string
	labels                                map[string]string
	hostNetwork                           bool
}

func createPod(t *testing.T, cs kubernetes.Interface, s podSpec) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name, Labels: s.labels},
		Spec: corev1.PodSpec{
			NodeName:           s.node,
			ServiceAccountName: s.serviceAccount,
			HostNetwork:        s.hostNetwork,
			Containers:         []corev1.Container{{Name: "main", Image: "periscope:dev"}},
		},
	}
	pod, err := cs.CoreV1().Pods(s.namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", s.namespace, s.name, err)
	}
	return pod
}

// setRunning does what a kubelet does once the CNI gave the pod its
// addresses: phase Running and status.podIPs, through the status
// subresource.
func setRunning(t *testing.T, cs kubernetes.Interface, pod *corev1.Pod, ips ...netip.Addr) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIPs = nil
	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	pod.Status.PodIP = ips[0].String()
	pod, err = cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set status of pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return pod
}

func deletePod(t *testing.T, cs kubernetes.Interface, namespace, name string) {
	t.Helper()
	zero := int64(0)
	if err := cs.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("delete pod %s/%s: %v", namespace, name, err)
	}
}

func of(kind discovery.EventKind, id string) func(discovery.EndpointEvent) bool {
	return func(ev discovery.EndpointEvent) bool { return ev.Kind == kind && ev.Endpoint.ID == id }
}

func TestPodBecomesAnEndpointWithItsVethAndCiliumLabels(t *testing.T) {
	_, cs := apiServer(t)
	lab := labtest.NewLab(t)
	veth, err := lab.AddPod(netlab.PodSpec{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	node := testName(t, "node")
	ns := testName(t, "ns")
	createNamespace(t, cs, ns, map[string]string{"team": "blue"})
	p, evs := runPods(t, cs, Options{NodeName: node, ClusterName: "lab"})

	pod := createPod(t, cs, podSpec{
		namespace: ns, name: "web", node: node, serviceAccount: "web-sa",
		labels: map[string]string{"app": "web", "io.cilium.k8s.policy.serviceaccount": "spoofed", "io.cilium.k8s.other": "x"},
	})
	// A pod of another node, with addresses, is never reported.
	other := createPod(t, cs, podSpec{namespace: ns, name: "elsewhere", node: node + "-other", labels: map[string]string{"app": "web"}})
	setRunning(t, cs, other, netip.MustParseAddr("198.19.253.9"))
	// Without addresses the pod is no endpoint yet.
	evs.none(t, "event before the pod has addresses", time.Second, func(discovery.EndpointEvent) bool { return true })

	setRunning(t, cs, pod, veth.IPv4, veth.IPv6)
	id := ns + "/web"
	got := evs.wait(t, "Added", eventTimeout, of(discovery.Added, id)).Endpoint
	want := discovery.Endpoint{
		Source:    Source,
		ID:        id,
		Name:      "web",
		Namespace: ns,
		Labels: []string{
			"k8s:app=web",
			// The API server labels every namespace with its name.
			"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=" + ns,
			"k8s:io.cilium.k8s.namespace.labels.team=blue",
			"k8s:io.cilium.k8s.policy.cluster=lab",
			"k8s:io.cilium.k8s.policy.serviceaccount=web-sa",
			"k8s:io.kubernetes.pod.namespace=" + ns,
		},
		IPs:       []netip.Addr{veth.IPv4, veth.IPv6},
		Interface: discovery.Interface{Name: veth.HostVeth.Name, Index: veth.HostVeth.Index},
	}
	if !got.Equal(want) {
		t.Fatalf("added endpoint\n got %+v\nwant %+v", got, want)
	}

	// A label change is an update.
	patch := []byte(`{"metadata":{"labels":{"app":"web2"}}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(context.Background(), "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	got = evs.wait(t, "Updated after the label change", eventTimeout, of(discovery.Updated, id)).Endpoint
	if !slices.Contains(got.Labels, "k8s:app=web2") || slices.Contains(got.Labels, "k8s:app=web") {
		t.Errorf("labels after the change: %v", got.Labels)
	}
	if got.Interface != want.Interface {
		t.Errorf("interface after the label change: %+v", got.Interface)
	}

	// So is a change of its namespace's labels.
	nsPatch := []byte(`{"metadata":{"labels":{"team":"green"}}}`)
	if _, err := cs.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, nsPatch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	got = evs.wait(t, "Updated after the namespace's label change", eventTimeout, of(discovery.Updated, id)).Endpoint
	if !slices.Contains(got.Labels, "k8s:io.cilium.k8s.namespace.labels.team=green") {
		t.Errorf("labels after the namespace's change: %v", got.Labels)
	}

	deletePod(t, cs, ns, "web")
	got = evs.wait(t, "Deleted", eventTimeout, of(discovery.Deleted, id)).Endpoint
	if got.ID != id || got.Interface != want.Interface {
		t.Errorf("deleted endpoint: %+v", got)
	}
	evs.none(t, "event of the other node's pod", 500*time.Millisecond, func(ev discovery.EndpointEvent) bool { return ev.Endpoint.Name == "elsewhere" })
	if n, pending := p.Len(); n != 0 || pending != 0 {
		t.Errorf("after the delete the watcher holds %d endpoints, %d queued keys", n, pending)
	}
}

func TestHostNetworkPodIsTheHost(t *testing.T) {
	_, cs := apiServer(t)
	node := testName(t, "node")
	ns := testName(t, "ns")
	createNamespace(t, cs, ns, nil)
	_, evs := runPods(t, cs, Options{NodeName: node})

	pod := createPod(t, cs, podSpec{namespace: ns, name: "agent", node: node, hostNetwork: true})
	hostIP := netip.MustParseAddr("127.0.0.1")
	setRunning(t, cs, pod, hostIP)
	got := evs.wait(t, "Added", eventTimeout, of(discovery.Added, ns+"/agent")).Endpoint
	if !got.HostNetwork || got.Interface != (discovery.Interface{}) || !slices.Equal(got.IPs, []netip.Addr{hostIP}) {
		t.Errorf("host-network endpoint: %+v", got)
	}
	if !slices.Contains(got.Labels, "k8s:io.cilium.k8s.policy.cluster=default") {
		t.Errorf("no default cluster label: %v", got.Labels)
	}
	if slices.ContainsFunc(got.Labels, func(l string) bool { return strings.HasPrefix(l, "k8s:"+ServiceAccountLabel) }) {
		t.Errorf("a service-account label without a service account: %v", got.Labels)
	}
}

// The kubelet may report the address before the watcher sees the veth (or
// the CNI may add a /32 later): the endpoint is reported at once, and
// again with its veth once one leads to the address.
func TestVethFoundAfterTheAddressIsReported(t *testing.T) {
	_, cs := apiServer(t)
	lab := labtest.NewLab(t)
	veth, err := lab.AddPod(netlab.PodSpec{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	node := testName(t, "node")
	ns := testName(t, "ns")
	createNamespace(t, cs, ns, nil)
	_, evs := runPods(t, cs, Options{NodeName: node})

	// An address the pod does not have yet, from the range tests may use.
	late := netip.AddrFrom4([4]byte{198, 19, lab.IPv4Net.Addr().As4()[2], 99})
	pod := createPod(t, cs, podSpec{namespace: ns, name: "late", node: node})
	setRunning(t, cs, pod, late)
	id := ns + "/late"
	got := evs.wait(t, "Added", eventTimeout, of(discovery.Added, id)).Endpoint
	if got.Interface != (discovery.Interface{}) {
		t.Fatalf("an interface before any leads to %s: %+v", late, got.Interface)
	}
	if err := veth.AddIPv4(late); err != nil {
		t.Fatal(err)
	}
	got = evs.wait(t, "Updated with the veth", eventTimeout, of(discovery.Updated, id)).Endpoint
	if want := (discovery.Interface{Name: veth.HostVeth.Name, Index: veth.HostVeth.Index}); got.Interface != want {
		t.Errorf("interface: got %+v, want %+v", got.Interface, want)
	}
}

// 100 pods created and deleted, ten at a time, each on a netlab pod's
// network: every one is reported with its veth and deleted, and the
// watcher holds nothing afterwards.
func TestPodChurnLeavesNothingBehind(t *testing.T) {
	_, cs := apiServer(t)
	lab := labtest.NewLab(t)
	const slots, total = 10, 100
	var nets []*netlab.Pod
	for i := range slots {
		p, err := lab.AddPod(netlab.PodSpec{Name: fmt.Sprintf("slot%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, p)
	}
	node := testName(t, "node")
	ns := testName(t, "ns")
	createNamespace(t, cs, ns, nil)
	p, evs := runPods(t, cs, Options{NodeName: node})

	for round := range total / slots {
		pending := map[string]*netlab.Pod{}
		for i, n := range nets {
			name := fmt.Sprintf("churn-%d-%d", round, i)
			pod := createPod(t, cs, podSpec{namespace: ns, name: name, node: node, labels: map[string]string{"round": fmt.Sprint(round)}})
			setRunning(t, cs, pod, n.IPv4)
			pending[ns+"/"+name] = n
		}
		for len(pending) > 0 {
			ev := evs.wait(t, fmt.Sprintf("Added of round %d", round), eventTimeout, func(ev discovery.EndpointEvent) bool {
				return ev.Kind != discovery.Deleted && pending[ev.Endpoint.ID] != nil && ev.Endpoint.Interface.Index != 0
			})
			if n := pending[ev.Endpoint.ID]; ev.Endpoint.Interface.Index != n.HostVeth.Index {
				t.Fatalf("%s: interface %+v, want %s", ev.Endpoint.ID, ev.Endpoint.Interface, n.HostVeth.Name)
			}
			delete(pending, ev.Endpoint.ID)
		}
		deleted := map[string]bool{}
		for i := range nets {
			name := fmt.Sprintf("churn-%d-%d", round, i)
			deletePod(t, cs, ns, name)
			deleted[ns+"/"+name] = true
		}
		for len(deleted) > 0 {
			ev := evs.wait(t, fmt.Sprintf("Deleted of round %d", round), eventTimeout, func(ev discovery.EndpointEvent) bool {
				return ev.Kind == discovery.Deleted && deleted[ev.Endpoint.ID]
			})
			delete(deleted, ev.Endpoint.ID)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, pending := p.Len()
		if n == 0 && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d pods came and went the watcher holds %d endpoints and %d queued keys", total, n, pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
