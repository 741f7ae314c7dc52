package compile

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
	"github.com/periscope-dev/periscope/enforcer/policy/ciliumexample"
)

// ciliumL34Examples are Cilium's example policies whose L3/L4 meaning
// enforcer/policy's conformance test holds to Cilium's documentation
// (TestCiliumL3L4ExamplesMeanWhatCiliumsDocsSay).
var ciliumL34Examples = []string{
	"l3/simple/l3.yaml", "l3/simple/l3_egress.yaml", "l3/ingress-allow-all/ingress-allow-all.yaml",
	"l3/egress-allow-all/egress-allow-all.yaml", "l3/egress-deny/egress-deny.yaml",
	"l3/egress-default-deny/egress-default-deny.yaml", "l3/entities/apiserver.yaml", "l3/entities/host.yaml",
	"l3/entities/nodes.yaml", "l3/entities/world.yaml", "l3/entities/from_world_deny.yaml",
	"l3/match-expressions/or-statement.yaml", "l3/match-expressions/and-statement.yaml",
	"l3/requires/endpoints.yaml", "l3/cidr/cidr.yaml", "l4/l4.yaml", "l4/l4_port_range.yaml",
	"l4/l3_l4_combined.yaml", "l4/cidr_l4_combined.yaml", "l4/icmp.yaml", "l4/init.yaml", "l4/from_init.yaml",
	"l4/multi_rule.yaml", "getting-started/l3-l4-policy.yaml", "getting-started/cilium_dkr_demo_l3-l4-policy-170817.yaml",
	"getting-started/cilium_dkr_demo_l7-policy-230817.yaml", "host/lock-down-ingress.yaml",
	"host/allow-extended-protocols.yaml", "host/demo-host-policy.yaml", "host/lock-down-dev-vms-remote-node.yaml",
	"host/lock-down-gke.yaml", "kubernetes/clustermesh/cross-cluster-policy.yaml",
	"kubernetes/clustermesh/cross-cluster-any-namespace-policy.yaml", "kubernetes/clusterwide/clusterscope-policy.yaml",
	"kubernetes/clusterwide/wildcard-from-endpoints.yaml", "kubernetes/clusterwide/health.yaml",
	"kubernetes/namespace/isolate-namespaces.yaml", "kubernetes/namespace/namespace-policy.yaml",
	"kubernetes/namespace/kubedns-policy.yaml", "kubernetes/namespace/namespace-labels-policy.yaml",
	"kubernetes/serviceaccount/serviceaccount-policy.yaml",
}

// examplePods are the endpoints the examples speak of, by namespace, each
// in its cluster (default unless named).
var examplePods = []struct {
	ns     string
	labels []string
}{
	{"default", []string{"k8s:role=backend"}}, {"default", []string{"k8s:role=frontend"}}, {"default", []string{"k8s:role=other"}},
	{"default", []string{"k8s:app=myService"}}, {"default", []string{"k8s:env=dev"}}, {"default", []string{"k8s:env=prod"}},
	{"default", []string{"k8s:role=public"}}, {"default", []string{"k8s:role=restricted"}}, {"default", []string{"k8s:role=victim"}},
	{"default", []string{"k8s:role=crawler"}}, {"default", []string{"k8s:id=app1"}}, {"default", []string{"k8s:id=app2"}},
	{"default", []string{"k8s:id=web-server"}}, {"default", []string{"k8s:id=goodclient"}},
	{"default", []string{"k8s:cilium.example.com/policy=strict"}}, {"staging", []string{"k8s:cilium.example.com/policy=strict"}},
	{"production", []string{"k8s:app=x"}}, {"production", []string{"k8s:cilium.example.com/policy=strict"}},
	{"default", []string{"k8s:name=x-wing", "k8s:io.cilium.k8s.policy.cluster=cluster1"}},
	{"default", []string{"k8s:name=rebel-base", "k8s:io.cilium.k8s.policy.cluster=cluster2"}},
	{"other", []string{"k8s:name=rebel-base", "k8s:io.cilium.k8s.policy.cluster=cluster2"}},
	{"ns1", []string{"k8s:name=leia"}}, {"ns2", []string{"k8s:name=luke"}}, {"ns1", []string{"k8s:name=luke"}},
	{"kube-system", []string{"k8s:k8s-app=kube-dns"}}, {"shop", []string{"k8s:k8s-app=kube-dns"}},
	{"kube-system", []string{"k8s:k8s-app=heapster"}}, {"default", []string{"k8s:name=echo-b"}},
	{"shop", []string{"k8s:name=pod-to-b-intra-node-nodeport"}}, {"public", []string{"k8s:app=a"}},
	{"rebels", []string{"k8s:name=rebel-base", "k8s:io.cilium.k8s.namespace.labels.faction=alliance"}},
	{"death-star", []string{"k8s:app=x", "k8s:io.cilium.k8s.namespace.labels.faction=empire"}},
	{"default", []string{"k8s:io.cilium.k8s.policy.serviceaccount=leia"}}, {"default", []string{"k8s:io.cilium.k8s.policy.serviceaccount=luke"}},
}

// Cilium's L3/L4, host and Kubernetes example policies, compiled as the
// policy store compiles them, decide every flow between the endpoints the
// examples speak of, the node's reserved peers and addresses outside the
// cluster as policy.Evaluate does.
func TestCiliumL3L4ExamplesCompileAsEvaluated(t *testing.T) {
	alloc, err := identity.NewAllocator("")
	if err != nil {
		t.Fatal(err)
	}
	var eps []Endpoint
	for i, p := range examplePods {
		labels := append([]string{"k8s:" + policy.NamespaceLabel + "=" + p.ns}, p.labels...)
		id, err := alloc.Allocate(identity.NewLabels(labels...))
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, Endpoint{ID: uint32(10 + i), Identity: uint32(id), Namespace: p.ns, Labels: p.labels,
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 10, byte(10 + i)})}})
	}
	for i, labels := range [][]string{{"k8s:type=ingress-worker", "k8s:node-access=ssh"}, {"k8s:type=worker"}} {
		eps = append(eps, Endpoint{ID: uint32(200 + i), Identity: uint32(identity.Host), Host: true, Labels: append([]string{"reserved:host"}, labels...)})
	}
	// The endpoints of init.yaml and health.yaml: none on a Periscope node
	// (docs/POLICY.md), compiled here as Cilium's would be.
	for i, id := range []identity.ID{identity.Init, identity.Health} {
		l, _ := identity.ReservedLabel(id)
		eps = append(eps, Endpoint{ID: uint32(210 + i), Identity: uint32(id), Labels: []string{l},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 10, byte(210 + i)})}})
	}
	type l4 struct {
		proto uint8
		port  uint16 // the ICMP type for ICMP
	}
	flows := []l4{{6, 22}, {6, 53}, {17, 53}, {6, 79}, {6, 80}, {17, 80}, {6, 81}, {6, 443}, {6, 444}, {6, 445},
		{6, 3389}, {6, 6443}, {17, 8472}, {6, 8181}, {6, 10250}, {6, 31414}, {17, 67}, {17, 123}, {6, 4240},
		{112, 0}, {2, 0}, {47, 0}, {1, 8}, {1, 13}, {58, 128}, {58, 8}}
	worldIPs := []string{"20.1.1.1", "20.1.1.2", "10.1.2.3", "10.96.0.1", "10.111.255.254", "10.112.0.1", "192.0.2.5",
		"192.0.3.1", "8.8.8.8", "8.8.4.4", "169.254.169.254", "198.18.11.1"}
	reserved := []identity.ID{identity.Host, identity.RemoteNode, identity.KubeAPIServer, identity.Health, identity.Init, identity.World}

	for _, file := range ciliumL34Examples {
		t.Run(file, func(t *testing.T) {
			pols, err := policy.ParseFile(ciliumexample.Path(t, file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Compile(Input{Policies: pols, Endpoints: eps, Identities: alloc.List(),
				IPCache: []IPEntry{{Prefix: netip.MustParsePrefix("198.18.11.200/32"), Identity: uint32(identity.RemoteNode)}}})
			if err != nil {
				t.Fatal(err)
			}
			labelsOf := map[uint32][]string{}
			for _, i := range c.Identities {
				labelsOf[uint32(i.ID)] = i.Labels
			}
			type remote struct {
				id   uint32
				peer policy.Peer
			}
			var remotes []remote
			for _, ep := range eps {
				if !ep.Host {
					remotes = append(remotes, remote{c.IdentityOf(ep.IPs[0]), policy.Peer{Identity: ep.Identity, Labels: labelsOf[ep.Identity], IP: ep.IPs[0]}})
				}
			}
			for _, id := range reserved {
				l, _ := identity.ReservedLabel(id)
				remotes = append(remotes, remote{uint32(id), policy.Peer{Identity: uint32(id), Labels: []string{l}}})
			}
			for _, s := range worldIPs {
				ip := netip.MustParseAddr(s)
				remotes = append(remotes, remote{c.IdentityOf(ip), policy.Peer{Identity: uint32(identity.World), Labels: []string{"reserved:world"}, IP: ip}})
			}
			seen := map[policy.Verdict]int{}
			for _, local := range eps {
				lp := policy.Endpoint{ID: local.ID, Namespace: local.Namespace, Labels: local.Labels}
				for _, r := range remotes {
					for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
						for _, f := range flows {
							want := policy.Evaluate(pols, lp, r.peer, dir, f.proto, f.port, uint8(f.port))
							got := c.Decide(local.ID, r.id, dir, f.proto, f.port)
							seen[want.Verdict]++
							if got.Verdict != want.Verdict || len(got.Policies)+len(want.Policies) > 0 && !reflect.DeepEqual(got.Policies, want.Policies) {
								t.Errorf("%v → %v (id %d, %v) %s proto %d port/type %d: compiled %v %v, evaluated %v %v",
									r.peer.Labels, local.Labels, r.id, r.peer.IP, dir, f.proto, f.port, got.Verdict, got.Policies, want.Verdict, want.Policies)
							}
						}
					}
				}
			}
			if seen[policy.Allowed]+seen[policy.Denied]+seen[policy.DeniedByDeny] == 0 {
				t.Errorf("the example was not exercised: %v", seen)
			}
		})
	}
}
