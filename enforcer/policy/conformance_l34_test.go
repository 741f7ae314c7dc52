package policy

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/policy/ciliumexample"
)

// Cilium's example policies beyond L7 (examples/policies/l3, l4, host,
// kubernetes, auth, getting-started of the cilium module go.mod requires,
// read from the module cache): each is accepted and means what Cilium's
// documentation (Documentation/security/policy/layer3.rst, layer4.rst,
// kubernetes.rst, deny.rst, host.rst, lifecycle.rst,
// Documentation/security/host-firewall.rst) says, or is refused naming the
// field Periscope does not enforce, or holds no policy and is skipped. Each
// file's comment quotes the documented meaning its cases hold it to.

// reservedIDs are Cilium's reserved identities by entity name.
var reservedIDs = map[string]uint32{"host": 1, "world": 2, "unmanaged": 3, "health": 4, "init": 5, "remote-node": 6, "kube-apiserver": 7, "ingress": 8}

// l34Examples are the accepted examples and what they let through.
func l34Examples() []struct {
	file  string
	cases []exchange
} {
	const tcp, udp, icmp4, icmp6, vrrp, igmp, gre = 6, 17, 1, 58, 112, 2, 47
	nsl := func(ns string) string { return "k8s:" + NamespaceLabel + "=" + ns }
	ep := func(ns string, labels ...string) Endpoint { return Endpoint{Namespace: ns, Labels: labels} }
	pod := func(ns string, labels ...string) Peer {
		return Peer{Identity: 1000, Labels: append(append([]string(nil), labels...), nsl(ns))}
	}
	reserved := func(name string) Peer {
		return Peer{Identity: reservedIDs[name], Labels: []string{"reserved:" + name}}
	}
	world := func(ip string) Peer {
		return Peer{Identity: 2, Labels: []string{"reserved:world"}, IP: netip.MustParseAddr(ip)}
	}
	host := func(labels ...string) Endpoint { return Endpoint{Labels: append([]string{"reserved:host"}, labels...)} }
	x := func(name string, local Endpoint, peer Peer, dir Direction, proto uint8, port uint16, want bool) exchange {
		return exchange{name: name, local: local, peer: peer, dir: dir, proto: proto, port: port, want: want}
	}
	ping := func(name string, local Endpoint, peer Peer, dir Direction, proto, typ uint8, want bool) exchange {
		return exchange{name: name, local: local, peer: peer, dir: dir, proto: proto, icmp: typ, want: want}
	}
	get := func(name string, local Endpoint, peer Peer, port uint16, path string, want bool) exchange {
		return exchange{name: name, local: local, peer: peer, dir: Ingress, port: port, req: HTTPRequest{Method: "GET", Path: path}, want: want}
	}
	in, out := Ingress, Egress

	backend, frontend, other := ep("default", "k8s:role=backend"), pod("default", "k8s:role=frontend"), pod("default", "k8s:role=other")
	frontendEP, backendPeer := ep("default", "k8s:role=frontend"), pod("default", "k8s:role=backend")
	myService := ep("default", "k8s:app=myService")
	dev := ep("default", "k8s:env=dev")
	anyPod := ep("default", "k8s:app=any")
	strict := "k8s:cilium.example.com/policy=strict"
	kubeDNS := func(ns string) Peer { return pod(ns, "k8s:k8s-app=kube-dns") }
	cluster := func(name string) string { return "k8s:" + ClusterLabel + "=" + name }
	xwing := Endpoint{Namespace: "default", Labels: []string{"k8s:name=x-wing", cluster("cluster1")}}
	rebelBase := func(ns, cl string) Peer { return pod(ns, "k8s:name=rebel-base", cluster(cl)) }
	sa := func(name string) string { return "k8s:io.cilium.k8s.policy.serviceaccount=" + name }
	allianceNS := func(ns, faction string) Peer {
		return pod(ns, "k8s:app=x", "k8s:"+NamespaceLabelsPrefix+"faction="+faction)
	}

	return []struct {
		file  string
		cases []exchange
	}{
		// layer3.rst "Simple Ingress Allow": "allow communication from
		// endpoints with the label role=frontend to endpoints with the label
		// role=backend"; "An endpoint can be put into the default deny mode
		// at ingress or egress if a rule selects the endpoint and contains
		// the respective rule section".
		{"l3/simple/l3.yaml", []exchange{
			x("frontend → backend on any port passes", backend, frontend, in, tcp, 8080, true),
			x("frontend → backend over UDP passes", backend, frontend, in, udp, 53, true),
			x("another pod → backend is dropped", backend, other, in, tcp, 8080, false),
			x("a frontend of another namespace is not selected (the policy's namespace)", backend, pod("other", "k8s:role=frontend"), in, tcp, 80, false),
			x("the world → backend is dropped", backend, world("198.18.7.1"), in, tcp, 80, false),
			x("backend's egress is not in default deny", backend, world("198.18.7.1"), out, tcp, 443, true),
			x("an endpoint without role=backend is not selected", frontendEP, other, in, tcp, 80, true),
		}},
		// layer3.rst "Simple Egress Allow": "allow communication to endpoints
		// with the label role=backend from endpoints with the label
		// role=frontend".
		{"l3/simple/l3_egress.yaml", []exchange{
			x("frontend → backend passes", frontendEP, backendPeer, out, tcp, 80, true),
			x("frontend → another pod is dropped", frontendEP, other, out, tcp, 80, false),
			x("frontend → the world is dropped", frontendEP, world("198.18.7.2"), out, udp, 53, false),
			x("frontend's ingress is not in default deny", frontendEP, world("198.18.7.2"), in, tcp, 80, true),
		}},
		// layer3.rst "Ingress Allow All Endpoints": "An empty EndpointSelector
		// will select all endpoints"; as for egress, the endpoints of the
		// policy's namespace.
		{"l3/ingress-allow-all/ingress-allow-all.yaml", []exchange{
			x("any pod of the namespace → victim passes", ep("default", "k8s:role=victim"), other, in, tcp, 9000, true),
			x("a pod of another namespace is dropped", ep("default", "k8s:role=victim"), pod("other", "k8s:role=other"), in, tcp, 9000, false),
			x("the world is no endpoint: dropped", ep("default", "k8s:role=victim"), world("198.18.7.3"), in, tcp, 80, false),
		}},
		// layer3.rst "Egress Allow All Endpoints": "An empty EndpointSelector
		// will select all egress endpoints from an endpoint based on the
		// CiliumNetworkPolicy namespace ... to all other endpoints in the same
		// namespace".
		{"l3/egress-allow-all/egress-allow-all.yaml", []exchange{
			x("frontend → any pod of the namespace passes", frontendEP, other, out, udp, 5000, true),
			x("frontend → a pod of another namespace is dropped", frontendEP, pod("other", "k8s:role=other"), out, tcp, 80, false),
			x("frontend → the world is dropped", frontendEP, world("198.18.7.4"), out, tcp, 443, false),
			x("frontend → the host is dropped", frontendEP, reserved("host"), out, tcp, 443, false),
		}},
		// layer3.rst "Simple Egress Deny": "If an egressDeny rule matches,
		// egress traffic is denied even if the policy contains egress rules
		// that would otherwise allow it."
		{"l3/egress-deny/egress-deny.yaml", []exchange{
			x("frontend → backend is denied though `all` allows it", frontendEP, backendPeer, out, tcp, 80, false),
			x("frontend → another pod passes (all)", frontendEP, other, out, tcp, 80, true),
			x("frontend → the world passes (all)", frontendEP, world("198.18.7.5"), out, tcp, 443, true),
			x("frontend → a backend of another namespace passes (the deny is namespaced)", frontendEP, pod("other", "k8s:role=backend"), out, tcp, 80, true),
		}},
		// layer3.rst "Ingress/Egress Default Deny": "put an endpoint into
		// default deny mode without whitelisting other peers".
		{"l3/egress-default-deny/egress-default-deny.yaml", []exchange{
			x("restricted → a pod is dropped", ep("default", "k8s:role=restricted"), other, out, tcp, 80, false),
			x("restricted → the world is dropped", ep("default", "k8s:role=restricted"), world("198.18.7.6"), out, udp, 53, false),
			x("restricted → the host is dropped", ep("default", "k8s:role=restricted"), reserved("host"), out, tcp, 22, false),
			x("restricted's ingress is untouched", ep("default", "k8s:role=restricted"), other, in, tcp, 80, true),
		}},
		// layer3.rst "Access to/from kube-apiserver": "Allow all endpoints
		// with the label env=dev to access the kube-apiserver." (no peer has
		// the kube-apiserver identity on a Periscope node: docs/POLICY.md)
		{"l3/entities/apiserver.yaml", []exchange{
			x("dev → kube-apiserver passes", dev, reserved("kube-apiserver"), out, tcp, 6443, true),
			x("dev → the host is dropped", dev, reserved("host"), out, tcp, 6443, false),
			x("dev → the world is dropped", dev, world("198.18.7.7"), out, tcp, 6443, false),
		}},
		// layer3.rst "Access to/from local host": "Allow all endpoints with
		// the label env=dev to access the host that is serving the
		// particular endpoint."
		{"l3/entities/host.yaml", []exchange{
			x("dev → host passes", dev, reserved("host"), out, tcp, 10250, true),
			x("dev → another node is dropped", dev, reserved("remote-node"), out, tcp, 10250, false),
			x("dev → the world is dropped", dev, world("198.18.7.8"), out, tcp, 80, false),
		}},
		// layer3.rst "Access to/from all nodes in the cluster": "receive
		// traffic from any host in the cluster".
		{"l3/entities/nodes.yaml", []exchange{
			x("host → dev passes", dev, reserved("host"), in, tcp, 80, true),
			x("a remote node → dev passes", dev, reserved("remote-node"), in, udp, 8472, true),
			x("the world → dev is dropped", dev, world("198.18.7.9"), in, tcp, 80, false),
			x("a pod → dev is dropped", dev, other, in, tcp, 80, false),
		}},
		// layer3.rst "Access to/from outside cluster": "enable access from
		// outside of the cluster to all endpoints that have the label
		// role=public".
		{"l3/entities/world.yaml", []exchange{
			x("the world → public passes", ep("default", "k8s:role=public"), world("198.18.7.10"), in, tcp, 443, true),
			x("a pod → public is dropped", ep("default", "k8s:role=public"), other, in, tcp, 443, false),
			x("a remote node → public is dropped", ep("default", "k8s:role=public"), reserved("remote-node"), in, tcp, 443, false),
			// layer3.rst notes "Kubernetes will automatically allow all
			// communication from the local host"; Cilium 1.20's default
			// --allow-localhost=auto does not (AlwaysAllowLocalhost is
			// false but for "always"): policy judges the host.
			x("the host → public is dropped (judged by policy, as Cilium 1.20's default)", ep("default", "k8s:role=public"), reserved("host"), in, tcp, 443, false),
		}},
		// deny.rst: "deny ingress from world on all namespaces on all Pods
		// ... allowing traffic from everywhere except from world".
		{"l3/entities/from_world_deny.yaml", []exchange{
			x("the world → any pod is denied", ep("shop", "k8s:app=web"), world("198.18.7.11"), in, tcp, 443, false),
			x("a pod of another namespace passes", ep("shop", "k8s:app=web"), pod("other", "k8s:app=x"), in, tcp, 443, true),
			x("a remote node passes", ep("shop", "k8s:app=web"), reserved("remote-node"), in, tcp, 443, true),
			x("the host endpoint is not selected by an endpointSelector", host(), world("198.18.7.11"), in, tcp, 22, true),
		}},
		// kubernetes.rst "Match Expressions": "the list values are treated
		// as a logical AND. If you want to match multiple keys with a
		// logical OR, you must use multiple matchExpressions"; "If the
		// namespace label of policy rules is omitted it defaults to the same
		// namespace where the policy itself is applied in".
		{"l3/match-expressions/or-statement.yaml", []exchange{
			x("any pod of production passes", anyPod, pod("production", "k8s:app=x"), in, tcp, 80, true),
			x("a strict pod of the policy's namespace passes", anyPod, pod("default", strict), in, tcp, 80, true),
			x("a strict pod of another namespace is dropped", anyPod, pod("staging", strict), in, tcp, 80, false),
			x("a pod with neither is dropped", anyPod, other, in, tcp, 80, false),
			x("endpoints of another namespace are not selected", ep("staging", "k8s:app=any"), other, in, tcp, 80, true),
		}},
		{"l3/match-expressions/and-statement.yaml", []exchange{
			x("a strict pod of production passes", anyPod, pod("production", strict), in, tcp, 80, true),
			x("another pod of production is dropped", anyPod, pod("production", "k8s:app=x"), in, tcp, 80, false),
			x("a strict pod of the policy's namespace is dropped", anyPod, pod("default", strict), in, tcp, 80, false),
		}},
		// layer3.rst: "For endpoints with env=prod, allow if source also has
		// label role=frontend" (the specs: form).
		{"l3/requires/endpoints.yaml", []exchange{
			x("frontend → prod passes", ep("default", "k8s:env=prod"), frontend, in, tcp, 80, true),
			x("another pod → prod is dropped", ep("default", "k8s:env=prod"), other, in, tcp, 80, false),
		}},
		// layer3.rst "Allow to external CIDR block": "talk to the external
		// IP 20.1.1.1, as well as the CIDR prefix 10.0.0.0/8, but not CIDR
		// prefix 10.96.0.0/12"; "CIDR rules do not apply to traffic where
		// both sides of the connection are either managed by Cilium or use
		// an IP belonging to a node".
		{"l3/cidr/cidr.yaml", []exchange{
			x("20.1.1.1 passes, any port", myService, world("20.1.1.1"), out, tcp, 8443, true),
			x("20.1.1.2 is dropped", myService, world("20.1.1.2"), out, tcp, 443, false),
			x("10.1.2.3 passes", myService, world("10.1.2.3"), out, udp, 53, true),
			x("10.96.0.1 is excepted", myService, world("10.96.0.1"), out, tcp, 443, false),
			x("10.111.255.254 is excepted (the end of 10.96.0.0/12)", myService, world("10.111.255.254"), out, tcp, 443, false),
			x("10.112.0.1 passes (after the exception)", myService, world("10.112.0.1"), out, tcp, 443, true),
			x("a pod at an address inside 10.0.0.0/8 is no CIDR peer", myService, Peer{Identity: 1000, Labels: other.Labels, IP: netip.MustParseAddr("10.1.2.4")}, out, tcp, 80, false),
			x("a remote node inside 10.0.0.0/8 is no CIDR peer", myService, Peer{Identity: 6, Labels: []string{"reserved:remote-node"}, IP: netip.MustParseAddr("10.1.2.5")}, out, tcp, 80, false),
		}},
		// layer4.rst "Example (L4)": "only be able to emit packets using TCP
		// on port 80, to any layer 3 destination".
		{"l4/l4.yaml", []exchange{
			x("TCP 80 to the world passes", myService, world("198.18.8.1"), out, tcp, 80, true),
			x("TCP 80 to a pod passes", myService, other, out, tcp, 80, true),
			x("TCP 81 is dropped", myService, world("198.18.8.1"), out, tcp, 81, false),
			x("UDP 80 is dropped", myService, world("198.18.8.1"), out, udp, 80, false),
			ping("ICMP is dropped", myService, world("198.18.8.1"), out, icmp4, 8, false),
		}},
		// layer4.rst "Example Port Ranges": "TCP on ports 80-444, to any
		// layer 3 destination".
		{"l4/l4_port_range.yaml", []exchange{
			x("TCP 80 passes", myService, world("198.18.8.2"), out, tcp, 80, true),
			x("TCP 443 passes", myService, world("198.18.8.2"), out, tcp, 443, true),
			x("TCP 444 passes", myService, world("198.18.8.2"), out, tcp, 444, true),
			x("TCP 79 is dropped", myService, world("198.18.8.2"), out, tcp, 79, false),
			x("TCP 445 is dropped", myService, world("198.18.8.2"), out, tcp, 445, false),
			x("UDP 100 is dropped", myService, world("198.18.8.2"), out, udp, 100, false),
		}},
		// layer4.rst "Labels-dependent Layer 4 rule": "Endpoints with other
		// labels will not be able to communicate with the endpoints with the
		// label role=backend, and endpoints with the label role=frontend will
		// not be able to communicate with role=backend on ports other than
		// 80".
		{"l4/l3_l4_combined.yaml", []exchange{
			x("frontend → backend TCP 80 passes", backend, frontend, in, tcp, 80, true),
			x("frontend → backend TCP 81 is dropped", backend, frontend, in, tcp, 81, false),
			x("frontend → backend UDP 80 is dropped", backend, frontend, in, udp, 80, false),
			x("another pod → backend TCP 80 is dropped", backend, other, in, tcp, 80, false),
		}},
		// layer4.rst "CIDR-dependent Layer 4 Rule": "communicate with all
		// remote destinations inside the CIDR 192.0.2.0/24, but they must
		// communicate using TCP on port 80".
		{"l4/cidr_l4_combined.yaml", []exchange{
			x("192.0.2.5 TCP 80 passes", ep("default", "k8s:role=crawler"), world("192.0.2.5"), out, tcp, 80, true),
			x("192.0.2.5 TCP 443 is dropped", ep("default", "k8s:role=crawler"), world("192.0.2.5"), out, tcp, 443, false),
			x("192.0.3.1 TCP 80 is dropped", ep("default", "k8s:role=crawler"), world("192.0.3.1"), out, tcp, 80, false),
		}},
		// layer4.rst "Example (ICMP/ICMPv6)": "only be able to emit packets
		// using ICMP with type 8 and ICMPv6 with message EchoRequest, to any
		// layer 3 destination".
		{"l4/icmp.yaml", []exchange{
			ping("ICMP echo request passes", myService, world("198.18.8.3"), out, icmp4, 8, true),
			ping("ICMPv6 echo request (128) passes", myService, other, out, icmp6, 128, true),
			ping("ICMP timestamp (13) is dropped", myService, world("198.18.8.3"), out, icmp4, 13, false),
			ping("type 8 is ICMP's only: ICMPv6 type 8 is dropped", myService, world("198.18.8.3"), out, icmp6, 8, false),
			ping("128 is ICMPv6's only: ICMP type 128 is dropped", myService, world("198.18.8.3"), out, icmp4, 128, false),
			x("TCP is dropped", myService, world("198.18.8.3"), out, tcp, 80, false),
		}},
		// lifecycle.rst: "allows all initializing endpoints to receive
		// connections from the host and to perform DNS queries" (no
		// Periscope endpoint is ever initializing: docs/POLICY.md).
		{"l4/init.yaml", []exchange{
			x("host → an init endpoint passes", ep("", "reserved:init"), reserved("host"), in, tcp, 80, true),
			x("a pod → an init endpoint is dropped", ep("", "reserved:init"), other, in, tcp, 80, false),
			x("an init endpoint → UDP 53 anywhere passes", ep("", "reserved:init"), world("198.18.8.4"), out, udp, 53, true),
			x("an init endpoint → TCP 53 is dropped", ep("", "reserved:init"), world("198.18.8.4"), out, tcp, 53, false),
			x("an ordinary pod is not selected", anyPod, world("198.18.8.4"), out, tcp, 53, true),
		}},
		// lifecycle.rst: "allows an endpoint to receive DNS queries from
		// initializing endpoints"; the second rule (toPorts alone) applies
		// to every peer.
		{"l4/from_init.yaml", []exchange{
			x("init → myService on any port passes", myService, reserved("init"), in, tcp, 8080, true),
			x("any peer → myService UDP 53 passes", myService, world("198.18.8.5"), in, udp, 53, true),
			x("a pod → myService TCP 53 is dropped", myService, other, in, tcp, 53, false),
		}},
		// Two rules of one policy are ORed: frontend on any port, anyone
		// on TCP 80 (layer3.rst "Policy rules ... are additive").
		{"l4/multi_rule.yaml", []exchange{
			x("frontend → backend on any port passes", backend, frontend, in, udp, 9999, true),
			x("the world → backend TCP 80 passes", backend, world("198.18.8.6"), in, tcp, 80, true),
			x("another pod → backend TCP 81 is dropped", backend, other, in, tcp, 81, false),
		}},
		{"getting-started/l3-l4-policy.yaml", []exchange{
			x("goodclient → web-server TCP 8181 passes", ep("default", "k8s:id=web-server"), pod("default", "k8s:id=goodclient"), in, tcp, 8181, true),
			x("goodclient → web-server TCP 80 is dropped", ep("default", "k8s:id=web-server"), pod("default", "k8s:id=goodclient"), in, tcp, 80, false),
			x("badclient → web-server TCP 8181 is dropped", ep("default", "k8s:id=web-server"), pod("default", "k8s:id=badclient"), in, tcp, 8181, false),
		}},
		{"getting-started/cilium_dkr_demo_l3-l4-policy-170817.yaml", []exchange{
			x("app2 → app1 TCP 80 passes", ep("default", "k8s:id=app1"), pod("default", "k8s:id=app2"), in, tcp, 80, true),
			x("app2 → app1 TCP 81 is dropped", ep("default", "k8s:id=app1"), pod("default", "k8s:id=app2"), in, tcp, 81, false),
			x("app3 → app1 TCP 80 is dropped", ep("default", "k8s:id=app1"), pod("default", "k8s:id=app3"), in, tcp, 80, false),
		}},
		{"getting-started/cilium_dkr_demo_l7-policy-230817.yaml", []exchange{
			get("app2: GET /public passes", ep("default", "k8s:id=app1"), pod("default", "k8s:id=app2"), 80, "/public", true),
			get("app2: GET /private is rejected", ep("default", "k8s:id=app1"), pod("default", "k8s:id=app2"), 80, "/private", false),
			get("app3 is dropped at L3", ep("default", "k8s:id=app1"), pod("default", "k8s:id=app3"), 80, "/public", false),
		}},
		// host.rst: "allows ingress traffic for any node with the label
		// type=ingress-worker on TCP ports 22, 6443 (kube-apiserver), 2379
		// (etcd), and 4240 (health checks), as well as UDP port 8472
		// (VXLAN)"; the first rule allows remote nodes and health on any
		// port.
		{"host/lock-down-ingress.yaml", []exchange{
			x("the world → host TCP 22 passes", host("k8s:type=ingress-worker"), world("198.18.9.1"), in, tcp, 22, true),
			x("the world → host TCP 6443 passes", host("k8s:type=ingress-worker"), world("198.18.9.1"), in, tcp, 6443, true),
			x("the world → host UDP 8472 passes", host("k8s:type=ingress-worker"), world("198.18.9.1"), in, udp, 8472, true),
			x("the world → host TCP 80 is dropped", host("k8s:type=ingress-worker"), world("198.18.9.1"), in, tcp, 80, false),
			x("the world → host UDP 22 is dropped", host("k8s:type=ingress-worker"), world("198.18.9.1"), in, udp, 22, false),
			x("a remote node → host on any port passes", host("k8s:type=ingress-worker"), reserved("remote-node"), in, tcp, 80, true),
			x("the host's egress is not selected", host("k8s:type=ingress-worker"), world("198.18.9.1"), out, tcp, 80, true),
			x("a node without the label is not selected", host("k8s:type=worker"), world("198.18.9.1"), in, tcp, 80, true),
			x("pods are not selected by a host policy", ep("default", "k8s:type=ingress-worker"), world("198.18.9.1"), in, tcp, 80, true),
		}},
		// host.rst: "allows egress traffic ... on TCP ports 22, 6443/443
		// (kube-apiserver), 2379 (etcd), and 4240 (health checks), UDP port
		// 8472 (VXLAN), and traffic with VRRP protocol" (the file's own
		// list: 6443, 443, 2379, 4240, 8472/UDP, VRRP, GRE, IPIP, IPV6,
		// ESP, AH; the file selects type=ingress-worker).
		{"host/allow-extended-protocols.yaml", []exchange{
			x("host → TCP 6443 passes", host("k8s:type=ingress-worker"), world("198.18.9.2"), out, tcp, 6443, true),
			x("host → UDP 8472 passes", host("k8s:type=ingress-worker"), reserved("remote-node"), out, udp, 8472, true),
			x("host → VRRP passes", host("k8s:type=ingress-worker"), world("198.18.9.2"), out, vrrp, 0, true),
			x("host → GRE passes", host("k8s:type=ingress-worker"), reserved("remote-node"), out, gre, 0, true),
			x("host → IGMP (not listed) is dropped", host("k8s:type=ingress-worker"), world("198.18.9.2"), out, igmp, 0, false),
			x("host → TCP 22 (not in the file) is dropped", host("k8s:type=ingress-worker"), world("198.18.9.2"), out, tcp, 22, false),
			x("host → UDP 6443 is dropped", host("k8s:type=ingress-worker"), world("198.18.9.2"), out, udp, 6443, false),
		}},
		// host-firewall.rst: "It allows communications from outside the
		// cluster only for TCP/22 and for ICMP (ping) echo requests. All
		// communications from the cluster to the hosts are allowed."
		{"host/demo-host-policy.yaml", []exchange{
			x("the world → host TCP 22 passes", host("k8s:node-access=ssh"), world("198.18.9.3"), in, tcp, 22, true),
			x("the world → host TCP 80 is dropped", host("k8s:node-access=ssh"), world("198.18.9.3"), in, tcp, 80, false),
			ping("the world → host ICMP echo request passes", host("k8s:node-access=ssh"), world("198.18.9.3"), in, icmp4, 8, true),
			ping("the world → host ICMPv6 echo request is dropped (family IPv4)", host("k8s:node-access=ssh"), world("198.18.9.3"), in, icmp6, 128, false),
			x("a pod (cluster) → host on any port passes", host("k8s:node-access=ssh"), other, in, tcp, 8080, true),
			x("a remote node (cluster) → host passes", host("k8s:node-access=ssh"), reserved("remote-node"), in, tcp, 10250, true),
			x("a node without node-access=ssh is not selected", host(), world("198.18.9.3"), in, tcp, 80, true),
		}},
		// Cilium's lock-down of development VMs (every node: nodeSelector
		// {}): SSH from the world, the control plane from remote nodes,
		// 6443 from kube-dns, NTP and 8.8.8.8/8.8.4.4 DNS out.
		{"host/lock-down-dev-vms-remote-node.yaml", []exchange{
			x("the world → host TCP 22 passes", host(), world("198.18.9.4"), in, tcp, 22, true),
			x("the world → host TCP 6443 is dropped", host(), world("198.18.9.4"), in, tcp, 6443, false),
			x("a remote node → host on any port passes", host(), reserved("remote-node"), in, tcp, 80, true),
			x("kube-dns → host TCP 6443 passes", host(), kubeDNS("kube-system"), in, tcp, 6443, true),
			x("kube-dns → host TCP 22 is dropped", host(), kubeDNS("kube-system"), in, tcp, 22, false),
			x("a kube-dns-labelled pod of another namespace is dropped", host(), kubeDNS("default"), in, tcp, 6443, false),
			x("the nodeport pod of any namespace → TCP 31414 passes (clusterwide)", host(), pod("shop", "k8s:name=pod-to-b-intra-node-nodeport"), in, tcp, 31414, true),
			x("host → the world UDP 123 passes", host(), world("198.18.9.5"), out, udp, 123, true),
			x("host → the world TCP 443 is dropped", host(), world("198.18.9.5"), out, tcp, 443, false),
			x("host → 8.8.8.8 UDP 53 passes", host(), world("8.8.8.8"), out, udp, 53, true),
			x("host → 8.8.8.8 TCP 53 is dropped", host(), world("8.8.8.8"), out, tcp, 53, false),
			x("host → 198.18.9.6 UDP 53 is dropped", host(), world("198.18.9.6"), out, udp, 53, false),
			x("host → echo-b TCP 8080 passes", host(), pod("default", "k8s:name=echo-b"), out, tcp, 8080, true),
		}},
		// Cilium's lock-down of GKE nodes (type=worker).
		{"host/lock-down-gke.yaml", []exchange{
			x("the world → host TCP 3389 passes", host("k8s:type=worker"), world("198.18.9.7"), in, tcp, 3389, true),
			x("the world → host TCP 10250 is dropped", host("k8s:type=worker"), world("198.18.9.7"), in, tcp, 10250, false),
			x("a remote node → host TCP 10250 passes", host("k8s:type=worker"), reserved("remote-node"), in, tcp, 10250, true),
			x("metrics-server → host TCP 10255 passes", host("k8s:type=worker"), pod("kube-system", "k8s:k8s-app=metrics-server"), in, tcp, 10255, true),
			x("host → the metadata server UDP 67 passes", host("k8s:type=worker"), world("169.254.169.254"), out, udp, 67, true),
			x("host → the metadata server UDP 68 is dropped", host("k8s:type=worker"), world("169.254.169.254"), out, udp, 68, false),
			x("host → heapster TCP 8082 passes", host("k8s:type=worker"), pod("kube-system", "k8s:k8s-app=heapster"), out, tcp, 8082, true),
			x("host → heapster TCP 8083 is dropped", host("k8s:type=worker"), pod("kube-system", "k8s:k8s-app=heapster"), out, tcp, 8083, false),
		}},
		// kubernetes.rst "Multi-Cluster": "the policy applies to rebel-base in
		// the default namespace of cluster2 regardless of the namespace in
		// cluster1 where x-wing is deployed in".
		{"kubernetes/clustermesh/cross-cluster-policy.yaml", []exchange{
			x("x-wing → rebel-base of cluster2 passes", xwing, rebelBase("default", "cluster2"), out, tcp, 80, true),
			x("x-wing → rebel-base of cluster1 is dropped", xwing, rebelBase("default", "cluster1"), out, tcp, 80, false),
			x("x-wing → rebel-base of cluster2 in another namespace is dropped", xwing, rebelBase("other", "cluster2"), out, tcp, 80, false),
			x("an x-wing of cluster2 is not selected", Endpoint{Namespace: "default", Labels: []string{"k8s:name=x-wing", cluster("cluster2")}}, world("198.18.9.8"), out, tcp, 80, true),
		}},
		// kubernetes.rst: "To allow access from/to any namespace, use
		// matchExpressions combined with an Exists operator."
		{"kubernetes/clustermesh/cross-cluster-any-namespace-policy.yaml", []exchange{
			x("x-wing → rebel-base of cluster2 in any namespace passes", xwing, rebelBase("other", "cluster2"), out, tcp, 80, true),
			x("x-wing → rebel-base of cluster1 is dropped", xwing, rebelBase("other", "cluster1"), out, tcp, 80, false),
			x("x-wing → the world is dropped", xwing, world("198.18.9.9"), out, tcp, 80, false),
		}},
		// kubernetes.rst "Clusterwide Policies": "allow ingress traffic from
		// pods matching the label name=luke from any namespace to pods
		// matching the labels name=leia in any namespace".
		{"kubernetes/clusterwide/clusterscope-policy.yaml", []exchange{
			x("luke of ns2 → leia of ns1 passes", ep("ns1", "k8s:name=leia"), pod("ns2", "k8s:name=luke"), in, tcp, 80, true),
			x("vader → leia is dropped", ep("ns1", "k8s:name=leia"), pod("ns1", "k8s:name=vader"), in, tcp, 80, false),
		}},
		// kubernetes.rst: "allows all Cilium managed endpoints in the cluster
		// to communicate with kube-dns on port 53/UDP in the kube-system
		// namespace".
		{"kubernetes/clusterwide/wildcard-from-endpoints.yaml", []exchange{
			x("a pod of any namespace → kube-dns UDP 53 passes", ep("kube-system", "k8s:k8s-app=kube-dns"), pod("shop", "k8s:app=x"), in, udp, 53, true),
			x("a pod → kube-dns TCP 53 is dropped", ep("kube-system", "k8s:k8s-app=kube-dns"), pod("shop", "k8s:app=x"), in, tcp, 53, false),
			x("the world is no managed endpoint: dropped", ep("kube-system", "k8s:k8s-app=kube-dns"), world("198.18.9.10"), in, udp, 53, false),
			x("a kube-dns label in another namespace is not selected", ep("shop", "k8s:k8s-app=kube-dns"), world("198.18.9.10"), in, udp, 53, true),
		}},
		// kubernetes.rst "Example: Add Health Endpoint": the health
		// endpoint (reserved:health, which no Periscope endpoint has) and
		// remote nodes.
		{"kubernetes/clusterwide/health.yaml", []exchange{
			x("a remote node → the health endpoint passes", ep("", "reserved:health"), reserved("remote-node"), in, tcp, 4240, true),
			x("the world → the health endpoint is dropped", ep("", "reserved:health"), world("198.18.9.11"), in, tcp, 4240, false),
			x("a pod is not selected", anyPod, world("198.18.9.11"), in, tcp, 4240, true),
		}},
		// kubernetes.rst: "enabling default-deny on all pods of either
		// namespace and then allowing communication from all pods within the
		// same namespace"; "the pods can still communicate egress to
		// anywhere".
		{"kubernetes/namespace/isolate-namespaces.yaml", []exchange{
			x("ns1 → ns1 passes", ep("ns1", "k8s:app=a"), pod("ns1", "k8s:app=b"), in, tcp, 80, true),
			x("ns2 → ns1 is dropped", ep("ns1", "k8s:app=a"), pod("ns2", "k8s:app=b"), in, tcp, 80, false),
			x("ns1 → ns2 is dropped at ns2", ep("ns2", "k8s:app=a"), pod("ns1", "k8s:app=b"), in, tcp, 80, false),
			x("ns2 → ns2 passes", ep("ns2", "k8s:app=a"), pod("ns2", "k8s:app=b"), in, tcp, 80, true),
			x("ns1's egress to anywhere passes", ep("ns1", "k8s:app=a"), world("198.18.9.12"), out, tcp, 443, true),
			x("default's pods are not selected", ep("default", "k8s:app=a"), pod("ns2", "k8s:app=b"), in, tcp, 80, true),
		}},
		// kubernetes.rst: "exposes all pods with the label name=leia in the
		// namespace ns1 to all pods with the label name=luke in the namespace
		// ns2".
		{"kubernetes/namespace/namespace-policy.yaml", []exchange{
			x("luke of ns2 → leia of ns1 passes", ep("ns1", "k8s:name=leia"), pod("ns2", "k8s:name=luke"), in, tcp, 80, true),
			x("luke of ns1 → leia of ns1 is dropped", ep("ns1", "k8s:name=leia"), pod("ns1", "k8s:name=luke"), in, tcp, 80, false),
			x("vader of ns2 → leia is dropped", ep("ns1", "k8s:name=leia"), pod("ns2", "k8s:name=vader"), in, tcp, 80, false),
			x("leia of ns2 is not selected", ep("ns2", "k8s:name=leia"), pod("ns1", "k8s:name=vader"), in, tcp, 80, true),
		}},
		// kubernetes.rst: "allows all pods in the public namespace in which
		// the policy is created to communicate with kube-dns on port 53/UDP
		// in the kube-system namespace".
		{"kubernetes/namespace/kubedns-policy.yaml", []exchange{
			x("public → kube-dns UDP 53 passes", ep("public", "k8s:app=a"), kubeDNS("kube-system"), out, udp, 53, true),
			x("public → kube-dns TCP 53 is dropped", ep("public", "k8s:app=a"), kubeDNS("kube-system"), out, tcp, 53, false),
			x("public → a kube-dns label of another namespace is dropped", ep("public", "k8s:app=a"), kubeDNS("public"), out, udp, 53, false),
			x("public → the world UDP 53 is dropped", ep("public", "k8s:app=a"), world("198.18.9.13"), out, udp, 53, false),
			x("pods of another namespace are not selected", ep("default", "k8s:app=a"), world("198.18.9.13"), out, udp, 53, true),
		}},
		// kubernetes.rst: "restricts rebel-base pods to only communicate with
		// pods in namespaces labeled faction: alliance"; "the selector is not
		// implicitly restricted to the policy's own namespace".
		{"kubernetes/namespace/namespace-labels-policy.yaml", []exchange{
			x("a pod of an alliance namespace → rebel-base passes", ep("default", "k8s:name=rebel-base"), allianceNS("rebels", "alliance"), in, tcp, 80, true),
			x("rebel-base → a pod of an alliance namespace passes", ep("default", "k8s:name=rebel-base"), allianceNS("hoth", "alliance"), out, tcp, 80, true),
			x("a pod of an empire namespace is dropped", ep("default", "k8s:name=rebel-base"), allianceNS("death-star", "empire"), in, tcp, 80, false),
			x("rebel-base → the world is dropped", ep("default", "k8s:name=rebel-base"), world("198.18.9.14"), out, tcp, 80, false),
		}},
		// kubernetes.rst "ServiceAccounts": "grants any pod running under the
		// service account of luke to issue a HTTP GET /public request on TCP
		// port 80 to all pods running associated to the service account of
		// leia".
		{"kubernetes/serviceaccount/serviceaccount-policy.yaml", []exchange{
			get("luke: GET /public passes", ep("default", sa("leia")), pod("default", sa("luke")), 80, "/public", true),
			get("luke: GET /public/x is rejected", ep("default", sa("leia")), pod("default", sa("luke")), 80, "/public/x", false),
			get("vader: GET /public is dropped", ep("default", sa("leia")), pod("default", sa("vader")), 80, "/public", false),
			x("luke on TCP 81 is dropped", ep("default", sa("leia")), pod("default", sa("luke")), in, tcp, 81, false),
		}},
	}
}

func TestCiliumL3L4ExamplesMeanWhatCiliumsDocsSay(t *testing.T) {
	for _, tc := range l34Examples() {
		t.Run(tc.file, func(t *testing.T) {
			pols, err := ParseFile(ciliumexample.Path(t, tc.file))
			if err != nil {
				t.Fatalf("Cilium's example is refused: %v", err)
			}
			passed, dropped := 0, 0
			for _, x := range tc.cases {
				if x.req.Method != "" {
					x.proto = 6
				}
				if got := x.passes(pols); got != x.want {
					t.Errorf("%s: passes %v, want %v", x.name, got, x.want)
				}
				if x.want {
					passed++
				} else {
					dropped++
				}
			}
			if passed == 0 || dropped == 0 {
				t.Errorf("the cases hold only one side (%d pass, %d dropped)", passed, dropped)
			}
		})
	}
}

// ciliumRefused are the examples Periscope refuses, with the field (or
// reason) the error must name.
var ciliumRefused = map[string]string{
	// Cilium 1.20's rule has "authentication" (refused too: mutual auth
	// is not performed); "auth" is no field of it.
	"auth/auth.yaml":               `unknown field "auth" in egress rule`,
	"l3/entities/customnodes.yaml": `"fromNodes" is not enforced`,
	"l3/requires/requires.yaml":    `"fromRequires" is not enforced`,
	"l3/service/service.yaml":      `"toServices" is not enforced`,
	"l4/l4_sni.yaml":               `"serverNames" is not enforced`,
	"l3/simple/README.rst":         "not valid YAML",
}

// ciliumSkipped are files that hold no policy: every document is skipped.
var ciliumSkipped = []string{"kubernetes/namespace/demo-pods.yaml", "kubernetes/serviceaccount/demo-pods.yaml"}

func TestCiliumExamplesPeriscopeDoesNotEnforceAreRefused(t *testing.T) {
	for rel, want := range ciliumRefused {
		path := ciliumexample.Path(t, rel)
		_, err := ParseFile(path)
		if err == nil {
			t.Errorf("%s is accepted; want it refused (%s)", rel, want)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not name the file and %s", rel, err, want)
		}
	}
	for _, rel := range ciliumSkipped {
		path := ciliumexample.Path(t, rel)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs, skipped, err := ParseDocuments(path, data)
		if err != nil || len(docs) != 0 || len(skipped) == 0 {
			t.Errorf("%s: %d policies, %d skipped, error %v; want only skipped objects", rel, len(docs), len(skipped), err)
		}
		for _, s := range skipped {
			if !strings.Contains(s.String(), path) || !strings.Contains(s.String(), "not a network policy") {
				t.Errorf("%s: skip note %q does not say where and why", rel, s)
			}
		}
	}
}

// Every file of examples/policies is held by one test: the L7 ones by
// TestCiliumExamplePoliciesMeanWhatCiliumsDocsSay, the others by the two
// above. A file a new Cilium version adds fails here until it is judged.
func TestEveryCiliumExampleIsJudged(t *testing.T) {
	judged := map[string]bool{}
	for _, tc := range l34Examples() {
		judged[tc.file] = true
	}
	for rel := range ciliumRefused {
		judged[rel] = true
	}
	for _, rel := range ciliumSkipped {
		judged[rel] = true
	}
	for _, rel := range []string{"l7/http/simple/l7.yaml", "l7/http/http.yaml", "l7/http/l7_multi.yaml", "getting-started/l7-policy.yaml",
		"l7/dns/dns.yaml", "l7/dns/dns-visibility.yaml", "l7/dns/dns-upgrade.yaml", "l3/fqdn/fqdn.yaml"} {
		judged[rel] = true
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(ciliumexample.Path(t, "l3/simple/l3.yaml"))))
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		n++
		if !judged[filepath.ToSlash(rel)] {
			t.Errorf("Cilium's example %s is judged by no conformance test", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(judged) {
		t.Errorf("%d files under examples/policies, %d judged: a judged file is gone", n, len(judged))
	}
}
