package collector_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/discovery"
	k8s "github.com/periscope-dev/periscope/discovery/kubernetes"
	"github.com/periscope-dev/periscope/discovery/kubernetes/kubetest"
)

var cnpResource = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}

// kubeCluster is a real API server and the clients a test drives it with.
type kubeCluster struct {
	srv *kubetest.Server
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
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
	return &kubeCluster{srv: srv, cs: cs, dyn: dyn}
}

// watch runs the pod and policy watchers of node into the sinks.
func (k *kubeCluster) watch(node string) func(ctx context.Context, eps discovery.EndpointSink, pols discovery.PolicySink) error {
	return func(ctx context.Context, eps discovery.EndpointSink, pols discovery.PolicySink) error {
		opts := k8s.Options{NodeName: node}
		pods, err := k8s.NewPods(k.cs, opts)
		if err != nil {
			return err
		}
		policies, err := k8s.NewPolicies(k.dyn, k.cs, opts)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		var perr error
		wg.Go(func() { perr = policies.Run(ctx, pols) })
		err = pods.Run(ctx, eps)
		wg.Wait()
		return errors.Join(err, perr)
	}
}

func (k *kubeCluster) namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := k.cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// runPod does what the scheduler, the CNI and a kubelet do for a pod whose
// network the test made: created on node, then Running with pod's
// addresses in its status.
func (k *kubeCluster) runPod(t *testing.T, namespace, name, node string, labels map[string]string, pod *netlab.Pod) {
	t.Helper()
	ctx := t.Context()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "default",
			Containers: []corev1.Container{{Name: "main", Image: "periscope:dev"}}},
	}
	p, err := k.cs.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", namespace, name, err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = pod.IPv4.String()
	p.Status.PodIPs = []corev1.PodIP{{IP: pod.IPv4.String()}, {IP: pod.IPv6.String()}}
	if _, err := k.cs.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set status of pod %s/%s: %v", namespace, name, err)
	}
}

func (k *kubeCluster) deletePod(t *testing.T, namespace, name string) {
	t.Helper()
	zero := int64(0)
	if err := k.cs.CoreV1().Pods(namespace).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("delete pod %s/%s: %v", namespace, name, err)
	}
}

func (k *kubeCluster) applyCNP(t *testing.T, doc string) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if _, err := k.dyn.Resource(cnpResource).Namespace(u.GetNamespace()).Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CiliumNetworkPolicy %s: %v", u.GetName(), err)
	}
}

func (k *kubeCluster) deleteCNP(t *testing.T, namespace, name string) {
	t.Helper()
	if err := k.dyn.Resource(cnpResource).Namespace(namespace).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete CiliumNetworkPolicy %s: %v", name, err)
	}
}

// TestKubernetesPodsAndPoliciesDriveTheCollector runs the collector on
// the real datapath with its endpoints and policies from a real API
// server: pods created through the API, their network made by the test
// (netlab pods) and their status IPs set, are attributed in flows with
// their Kubernetes labels; a label change re-identifies; a
// CiliumNetworkPolicy created through the API is enforced and lifted when
// deleted, one with a field not enforced is refused with a Warning Event;
// 100 pods created and deleted at 10 pods/s leave no identity,
// attachment or map entry behind.
func TestKubernetesPodsAndPoliciesDriveTheCollector(t *testing.T) {
	k := startKubeCluster(t)
	lab := newE2ELab(t)
	pods := addPods(t, lab, netlab.PodSpec{Name: "client"}, netlab.PodSpec{Name: "server"})
	client, server := pods[0], pods[1]
	serveTCP(t, server, 8080, 8081)
	const node, ns = "node-a", "shop"
	grace := time.Second
	n := startDiscoveryNode(t, node, grace, k.watch(node))
	k.namespace(t, ns, map[string]string{"team": "blue"})
	k.runPod(t, ns, "client", node, map[string]string{"app": "client"}, client)
	k.runPod(t, ns, "server", node, map[string]string{"app": "server"}, server)

	t.Run("pods are attributed in flows with their Kubernetes labels", func(t *testing.T) {
		n.waitEndpoint(t, client.IPv4, "client", 30*time.Second)
		srv := n.waitEndpoint(t, server.IPv6, "server", 30*time.Second)
		if err := hasLabels(srv.Labels, "k8s:app=server", "k8s:io.kubernetes.pod.namespace=shop",
			"k8s:io.cilium.k8s.namespace.labels.team=blue", "k8s:io.cilium.k8s.policy.serviceaccount=default",
			"k8s:io.cilium.k8s.policy.cluster=default"); err != nil {
			t.Error(err)
		}
		var f api.Flow
		waitWithin(t, 30*time.Second, "a flow from client to server", func() bool {
			connects(t, client, server, 8080)
			var ok bool
			f, ok = n.flowBetween(t, "client", "server")
			return ok
		})
		if f.Source.Namespace != ns || f.Destination.Namespace != ns || f.Source.Identity < 256 || f.Destination.Identity != srv.Identity {
			t.Errorf("flow %+v -> %+v: want both in %s with their identities", f.Source, f.Destination, ns)
		}
		if err := hasLabels(f.Destination.Labels, "k8s:app=server", "k8s:io.cilium.k8s.namespace.labels.team=blue"); err != nil {
			t.Errorf("flow's destination: %v", err)
		}
	})

	t.Run("a label change re-identifies the pod", func(t *testing.T) {
		before, _ := n.endpointAt(server.IPv4)
		patch := []byte(`{"metadata":{"labels":{"tier":"db"}}}`)
		if _, err := k.cs.CoreV1().Pods(ns).Patch(t.Context(), "server", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitWithin(t, 30*time.Second, "the server's new labels", func() bool {
			ep, _ := n.endpointAt(server.IPv4)
			return hasLabels(ep.Labels, "k8s:tier=db", "k8s:app=server") == nil
		})
		after, _ := n.endpointAt(server.IPv4)
		if after.Identity == before.Identity || after.ID != before.ID {
			t.Errorf("identity %d -> %d, endpoint id %d -> %d: want a new identity on the same endpoint",
				before.Identity, after.Identity, before.ID, after.ID)
		}
	})

	t.Run("a CiliumNetworkPolicy from the API server is enforced, and lifted when deleted", func(t *testing.T) {
		if !connects(t, client, server, 8081) {
			t.Fatal("no policy yet, and client cannot reach server:8081")
		}
		k.applyCNP(t, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-in, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`)
		waitWithin(t, 30*time.Second, "server:8081 denied", func() bool { return !connects(t, client, server, 8081) })
		if !connects(t, client, server, 8080) {
			t.Error("the policy allows client to server:8080; it was denied")
		}
		if got := n.store.Get(ns, "server-in"); len(got) != 1 || got[0].Kind != "CiliumNetworkPolicy" {
			t.Errorf("the store has %+v", got)
		}
		k.deleteCNP(t, ns, "server-in")
		waitWithin(t, 30*time.Second, "server:8081 allowed again", func() bool { return connects(t, client, server, 8081) })
		if got := n.store.List(); len(got) != 0 {
			t.Errorf("policies left after the deletion: %+v", got)
		}
	})

	t.Run("a policy with a field not enforced is refused, with a Warning Event, the rest stays", func(t *testing.T) {
		k.applyCNP(t, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: keep, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
`)
		k.applyCNP(t, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: refused, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  egress: [{toServices: [{k8sService: {serviceName: db, namespace: shop}}]}]
`)
		waitWithin(t, 30*time.Second, "a PolicyRefused event on refused", func() bool {
			evs, err := k.cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "refused").String()})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs.Items {
				if e.Reason == k8s.RefusedReason && strings.Contains(e.Message, "toServices") {
					return true
				}
			}
			return false
		})
		if got := n.store.Get(ns, "keep"); len(got) != 1 {
			t.Errorf("keep: %+v, want it in force", got)
		}
		if got := n.store.Get(ns, "refused"); len(got) != 0 {
			t.Errorf("refused is in force: %+v", got)
		}
		if !strings.Contains(n.log.String(), "policy object refused") {
			t.Error("the log does not say the policy was refused")
		}
		k.deleteCNP(t, ns, "keep")
		k.deleteCNP(t, ns, "refused")
		waitWithin(t, 30*time.Second, "no policy", func() bool { return len(n.store.List()) == 0 })
	})

	t.Run("100 new pods talking before their status names them: no flow attributed to world", func(t *testing.T) {
		testNewPodsTalkingFirst(t, k, n, lab, server, ns, node)
	})

	t.Run("100 pods at 10 pods/s leave nothing behind", func(t *testing.T) {
		testPodChurn(t, k, n, lab, ns, node, grace)
	})
}

// testPodChurn creates a pod every 100 ms (10 pods/s) on a pool of 10
// netlab pods, each deleted 10 pods later (its address and veth then go to
// the next: the deletion and the creation race), 100 in all, and measures
// the time from the pod's status naming its addresses to the collector
// attributing them. Then every churned pod is gone from the registry, the
// attachments, the per-endpoint maps and, after the grace, the
// identities.
func testPodChurn(t *testing.T, k *kubeCluster, n *discoveryNode, lab *netlab.Lab, ns, node string, grace time.Duration) {
	const pool, total = 10, 100
	var pods []*netlab.Pod
	for i := range pool {
		p, err := lab.AddPod(netlab.PodSpec{Name: fmt.Sprintf("churn%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	// Baseline: what the client and server alone use (the entries of the
	// half of each double-buffered map in force).
	settleMaps := func() map[string]int {
		if err := n.store.Refresh(); err != nil {
			t.Fatal(err)
		}
		return n.mapEntries(t)
	}
	baseMaps := settleMaps()
	baseIfaces := n.dp.Interfaces()

	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := range total {
		<-tick.C
		if i >= pool {
			k.deletePod(t, ns, fmt.Sprintf("churn-%d", i-pool))
		}
		name := fmt.Sprintf("churn-%d", i)
		p := pods[i%pool]
		k.runPod(t, ns, name, node, map[string]string{"app": "churn", "pod-template-hash": fmt.Sprint(i)}, p)
		set := time.Now()
		wg.Go(func() {
			deadline := set.Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if ep, ok := n.endpointAt(p.IPv4); ok && ep.PodName == name {
					mu.Lock()
					lat = append(lat, time.Since(set))
					mu.Unlock()
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	rate := float64(total) / time.Since(start).Seconds()
	wg.Wait()
	for i := total - pool; i < total; i++ {
		k.deletePod(t, ns, fmt.Sprintf("churn-%d", i))
	}
	p50, p99, maxd := latencies(lat)
	t.Logf("pod churn: %d pods at %.1f pods/s; status IPs set -> attributed: p50 %v, p99 %v, max %v",
		total, rate, p50.Round(time.Millisecond), p99.Round(time.Millisecond), maxd.Round(time.Millisecond))
	if os.Getenv("PERISCOPE_BENCH_OUT") != "" {
		f, err := os.OpenFile(os.Getenv("PERISCOPE_BENCH_OUT"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "pod-churn pods=%d rate=%.1f p50_ms=%d p99_ms=%d max_ms=%d\n",
				total, rate, p50.Milliseconds(), p99.Milliseconds(), maxd.Milliseconds())
			f.Close()
		}
	}
	if len(lat) != total {
		t.Errorf("%d of %d pods were attributed within 30 s", len(lat), total)
	}

	waitWithin(t, 60*time.Second, "every churned pod gone from the registry", func() bool {
		return len(n.c.Registry().Endpoints()) == 2
	})
	for _, e := range n.c.Registry().Endpoints() {
		if e.Name != "client" && e.Name != "server" {
			t.Errorf("endpoint left: %+v", e)
		}
	}
	// A removal detaches after the registry forgets the endpoint.
	waitWithin(t, 30*time.Second, fmt.Sprintf("the attachments as before the churn (%v)", baseIfaces), func() bool {
		return sameSet(n.dp.Interfaces(), baseIfaces)
	})
	if got := settleMaps(); !mapsEqual(got, baseMaps) {
		t.Errorf("per-endpoint map entries %v, want %v as before the churn", got, baseMaps)
	}
	waitWithin(t, 10*grace+30*time.Second, "the churned pods' identities released", func() bool {
		for _, id := range n.c.Identities() {
			if strings.Contains(id.Labels.String(), "k8s:app=churn") {
				return false
			}
		}
		return true
	})
}

// testNewPodsTalkingFirst creates a pod every 100 ms (10 pods/s), 100 in
// all, each deleted 5 s (50 pods) later, as a CNI and a kubelet do: its network
// first (a new netlab pod: a new veth), which at once starts connecting to
// server, then the pod through the API with its addresses in its status.
// Each talks until the collector attributes it and a few connections
// more. Every record of a new pod produced while it existed must name it:
// none may be attributed to reserved:world. (Without the attribution hold
// its first connections, before its status names its addresses, are the
// world's.)
func testNewPodsTalkingFirst(t *testing.T, k *kubeCluster, n *discoveryNode, lab *netlab.Lab, server *netlab.Pod, ns, node string) {
	const total, life = 100, 50
	type newPod struct {
		name                         string
		net                          *netlab.Pod
		created, attributed, deleted time.Time
	}
	// The pods' networks are made ahead (AddPod may take longer than a
	// tick on a loaded machine); each starts talking at its tick.
	nets := make(chan *netlab.Pod, 10)
	go func() {
		defer close(nets)
		for i := range total {
			net, err := lab.AddPod(netlab.PodSpec{Name: fmt.Sprintf("new%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			nets <- net
		}
	}()
	pods := make([]*newPod, 0, total)
	var talkers sync.WaitGroup
	talk := func(p *newPod) {
		deadline := time.Now().Add(10 * time.Second)
		more := 3
		for time.Now().Before(deadline) && more > 0 {
			connects(t, p.net, server, 8080)
			if ep, ok := n.endpointAt(p.net.IPv4); ok && ep.PodName == p.name {
				if more == 3 {
					p.attributed = time.Now()
				}
				more--
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	del := func(p *newPod) {
		p.deleted = time.Now()
		k.deletePod(t, ns, p.name)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	// Every pod lives life ticks, the last ones too: its connections' ends
	// (a second after their close) are reported while it exists.
	var rate float64
	for i := range total + life {
		<-tick.C
		if i >= life {
			del(pods[i-life])
		}
		if i >= total {
			continue
		}
		net, ok := <-nets
		if !ok {
			t.Fatal("no network for a new pod")
		}
		p := &newPod{name: fmt.Sprintf("new-%d", i), net: net, created: time.Now()}
		pods = append(pods, p)
		talkers.Go(func() { talk(p) })
		k.runPod(t, ns, p.name, node, map[string]string{"app": "new"}, net)
		if i == total-1 {
			rate = float64(total) / time.Since(start).Seconds()
		}
	}
	talkers.Wait()
	waitWithin(t, 60*time.Second, "every new pod gone from the registry", func() bool {
		return len(n.c.Registry().Endpoints()) == 2
	})
	waitWithin(t, 30*time.Second, "no record held for attribution", func() bool {
		st := n.c.Stages()
		return len(st) == 0 || st[0].Queued == 0
	})
	var records, world, silent int
	for _, p := range pods {
		mine := 0
		for _, s := range n.seen.at(p.net.IPv4) {
			if !s.time.Before(p.deleted) {
				continue // after its deletion: no longer its address
			}
			records++
			switch {
			case s.world:
				world++
				t.Logf("%s: a record attributed to world: event %v, connection start %v after the pod's network talked; attributed after %v, deleted after %v",
					p.name, s.time.Sub(p.created), s.start.Sub(p.created), p.attributed.Sub(p.created), p.deleted.Sub(p.created))
			case s.pod == p.name:
				mine++
			default:
				t.Errorf("a record of %s (%s) attributed to %q", p.name, p.net.IPv4, s.pod)
			}
		}
		if mine == 0 {
			silent++
		}
	}
	var st account.Stage
	if ss := n.c.Stages(); len(ss) > 0 {
		st = ss[0]
	}
	t.Logf("new pods talking first: %d pods at %.1f pods/s, %d records of theirs while they existed, %d attributed to world; "+
		"attribution hold: %d held and re-attributed, %d held to the window's end", total, rate, records, world,
		st.Detail["reattributed"], st.Detail["expired"])
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	if world != 0 {
		t.Errorf("%d records of new pods attributed to world, want 0", world)
	}
	if silent > 0 {
		t.Errorf("%d of %d new pods have no record attributed to them", silent, total)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			return false
		}
	}
	return true
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
