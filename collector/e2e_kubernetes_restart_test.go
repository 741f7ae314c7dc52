package collector_test

import (
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// TestKubernetesPolicyDeletedWhileTheCollectorWasDownIsRemoved applies a
// CiliumNetworkPolicy through the API server and a policy by hand
// (`periscope policy apply`), stops the collector (the policies stay in
// force, pinned and persisted), deletes the object, and starts the
// collector again on the same state: once the watcher has listed the
// API server's policies, the deleted object's policy is gone and the
// traffic it denied passes; the hand-applied policy stays.
func TestKubernetesPolicyDeletedWhileTheCollectorWasDownIsRemoved(t *testing.T) {
	k := startKubeCluster(t)
	lab := newE2ELab(t)
	pods := addPods(t, lab, netlab.PodSpec{Name: "client"}, netlab.PodSpec{Name: "server"})
	client, server := pods[0], pods[1]
	serveTCP(t, server, 8080, 8081)
	const node, ns = "node-r", "shop"
	dir := t.TempDir()
	pin := netlab.PinPath(t, "e2e-disc")

	n := startDiscoveryNodeAt(t, node, time.Second, dir, pin, k.watch(node))
	k.namespace(t, ns, nil)
	k.runPod(t, ns, "client", node, map[string]string{"app": "client"}, client)
	k.runPod(t, ns, "server", node, map[string]string{"app": "server"}, server)
	n.waitEndpoint(t, client.IPv4, "client", 30*time.Second)
	n.waitEndpoint(t, server.IPv4, "server", 30*time.Second)
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
	// By hand: the client may reach the server on any port (it changes
	// nothing of server-in's verdicts).
	if _, _, err := n.store.Apply("by-hand.yaml", []byte(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-out, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toEndpoints: [{matchLabels: {app: server}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 30*time.Second, "server:8081 denied by server-in", func() bool { return !connects(t, client, server, 8081) })
	if got := n.store.Get(ns, "server-in"); len(got) != 1 || got[0].Origin.Source != policystore.OriginK8s {
		t.Fatalf("server-in in the store: %+v, want it from k8s", got)
	}

	n.stop()
	if connects(t, client, server, 8081) {
		t.Fatal("with the collector stopped, server-in no longer denies server:8081: the restart proves nothing")
	}
	k.deleteCNP(t, ns, "server-in")

	n = startDiscoveryNodeAt(t, node, time.Second, dir, pin, k.watch(node))
	waitWithin(t, 30*time.Second, "server-in removed after the restart", func() bool { return len(n.store.Get(ns, "server-in")) == 0 })
	waitWithin(t, 30*time.Second, "server:8081 allowed again", func() bool { return connects(t, client, server, 8081) })
	if got := n.store.Get(ns, "client-out"); len(got) != 1 || got[0].Origin != (policystore.Origin{}) {
		t.Errorf("client-out after the restart: %+v, want it kept as applied by hand", got)
	}
	if !strings.Contains(n.log.String(), "policy object deleted while not watching: removed") {
		t.Error("the log does not say server-in was removed")
	}
}
