package policy

import (
	"net/netip"
	"strings"
	"testing"
)

// The L3/L4 semantics Cilium's documentation states beyond its examples
// (Documentation/security/policy/language.rst's parts: intro.rst,
// deny.rst, layer3.rst, layer4.rst, kubernetes.rst), each case quoting
// the sentence it holds.
func TestCiliumDocumentedL3L4Semantics(t *testing.T) {
	const head = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {matchLabels: {app: server}}\n"
	const tcp, udp, sctp, icmp4, icmp6 = 6, 17, 132, 1, 58
	server := Endpoint{Namespace: "default", Labels: []string{"k8s:app=server"}}
	pod := func(ns string, labels ...string) Peer {
		return Peer{Identity: 1000, Labels: append(append([]string(nil), labels...), "k8s:"+NamespaceLabel+"="+ns)}
	}
	client, other := pod("default", "k8s:app=client"), pod("default", "k8s:app=other")
	reserved := func(name string) Peer {
		return Peer{Identity: reservedIDs[name], Labels: []string{"reserved:" + name}}
	}
	world := Peer{Identity: 2, Labels: []string{"reserved:world"}, IP: netip.MustParseAddr("198.18.12.1")}
	x := func(name string, peer Peer, dir Direction, proto uint8, port uint16, want bool) exchange {
		return exchange{name: name, local: server, peer: peer, dir: dir, proto: proto, port: port, want: want}
	}
	ping := func(name string, peer Peer, proto, typ uint8, want bool) exchange {
		return exchange{name: name, local: server, peer: peer, dir: Egress, proto: proto, icmp: typ, want: want}
	}
	in, out := Ingress, Egress

	for _, tc := range []struct {
		name, spec string
		cases      []exchange
	}{
		// deny.rst's table: an L3 allow with an L4 deny on 80: "Curl to
		// port 81 is allowed ... Curl to port 80 is denied because there is
		// a deny policy on that port; Ping to the server is allowed".
		{"deny.rst: an L4 deny beside an L3 allow", "  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n" +
			"  ingressDeny: [{toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]\n", []exchange{
			x("curl server:81 is allowed", client, in, tcp, 81, true),
			x("curl server:80 is denied", client, in, tcp, 80, false),
			{name: "ping server is allowed", local: server, peer: client, dir: in, proto: icmp4, icmp: 8, want: true},
		}},
		// deny.rst: "Deny policies take precedence over allow policies"
		// (the L3 deny column: everything denied despite L4 and L3 allows).
		{"deny.rst: an L3 deny over L3 and L4 allows", "  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}, {fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]\n" +
			"  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n", []exchange{
			x("curl server:80 is denied", client, in, tcp, 80, false),
			x("curl server:81 is denied", client, in, tcp, 81, false),
			x("another pod is dropped (default deny)", other, in, tcp, 80, false),
		}},
		// deny.rst's last column (deny on 80 alone): "Pods will enter
		// default-deny mode as soon a single policy selects it": 81 and
		// ping are denied too.
		{"deny.rst: a deny alone puts the endpoint in default deny", "  ingressDeny: [{toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]\n", []exchange{
			x("curl server:81 is denied", client, in, tcp, 81, false),
			x("curl server:80 is denied", client, in, tcp, 80, false),
			x("egress is untouched", client, out, tcp, 80, true),
		}},
		// layer3.rst: "An endpoint can be put into the default deny mode at
		// ingress or egress if a rule selects the endpoint and contains the
		// respective rule section ingress or egress."
		{"layer3.rst: default deny only for the direction a rule has", "  egress: [{toEndpoints: [{matchLabels: {app: client}}]}]\n", []exchange{
			x("egress to client passes", client, out, tcp, 80, true),
			x("egress to another pod is dropped", other, out, tcp, 80, false),
			x("ingress from anyone passes", world, in, tcp, 80, true),
		}},
		// intro.rst: "Rules with EnableDefaultDeny disabled are ignored
		// when determining the default mode."
		{"intro.rst: enableDefaultDeny false adds allows, no default deny", "  enableDefaultDeny: {ingress: false}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n", []exchange{
			x("client passes", client, in, tcp, 80, true),
			x("another pod passes: the endpoint is not in default deny", other, in, tcp, 80, true),
		}},
		// Cilium 1.20 makes a policy entry per rule of a direction
		// (pkg/policy/utils.RulesToPolicyEntries): enableDefaultDeny true
		// for a direction without rules puts nothing in default deny.
		{"Cilium: enableDefaultDeny true without rules in that direction", "  enableDefaultDeny: {ingress: true, egress: true}\n  egress: [{toEndpoints: [{matchLabels: {app: client}}]}]\n", []exchange{
			x("ingress from anyone passes", world, in, tcp, 80, true),
			x("egress to client passes", client, out, tcp, 80, true),
			x("egress to another pod is dropped", other, out, tcp, 80, false),
		}},
		// layer3.rst "Ingress Allow All Endpoints" / egress-default-deny:
		// an empty EndpointSelector selects every endpoint (of the
		// namespace); an empty rule `{}` selects the endpoint and allows
		// nothing.
		{"layer3.rst: ingress [{}] is default deny with nothing allowed", "  ingress: [{}]\n", []exchange{
			x("a pod is dropped", client, in, tcp, 80, false),
			x("the world is dropped", world, in, tcp, 80, false),
		}},
		{"layer3.rst: fromEndpoints [{}] is every endpoint of the namespace", "  ingress: [{fromEndpoints: [{}]}]\n", []exchange{
			x("a pod of the namespace passes", other, in, tcp, 80, true),
			x("a pod of another namespace is dropped", pod("shop", "k8s:app=client"), in, tcp, 80, false),
			x("the world is dropped", world, in, tcp, 80, false),
		}},
		// Cilium 1.20 (pkg/policy/utils/parserules.go: "Explicitly check
		// for empty non-nil slices, it should not result in any identity
		// being selected"; rule.go mergeL4Filter: "short-circuit if no
		// endpoint is selected"): an empty peer list beside toPorts selects
		// no peer; only an absent (or null) one means every peer.
		{"Cilium: fromEndpoints [] beside toPorts selects no peer", "  ingress: [{fromEndpoints: [], toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]\n", []exchange{
			x("a pod on 80 is dropped", client, in, tcp, 80, false),
			x("the world on 80 is dropped", world, in, tcp, 80, false),
		}},
		{"Cilium: fromEntities [] and fromCIDR [] beside toPorts select no peer", "  ingress: [{fromEntities: [], toPorts: [{ports: [{port: '80', protocol: TCP}]}]}, {fromCIDR: [], toPorts: [{ports: [{port: '81', protocol: TCP}]}]}]\n", []exchange{
			x("the world on 80 is dropped", world, in, tcp, 80, false),
			x("the world on 81 is dropped", world, in, tcp, 81, false),
		}},
		{"Cilium: an empty peer list in a deny denies no peer", "  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromCIDRSet: [], toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]\n", []exchange{
			x("the world on 80 passes", world, in, tcp, 80, true),
		}},
		{"Cilium: a null peer list beside toPorts is every peer", "  ingress: [{fromEndpoints: null, toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]\n", []exchange{
			x("the world on 80 passes", world, in, tcp, 80, true),
			x("the world on 81 is dropped", world, in, tcp, 81, false),
		}},
		// kubernetes.rst "Match Expressions": In, NotIn, Exists,
		// DoesNotExist (Kubernetes label selector semantics), ANDed.
		{"kubernetes.rst: matchExpressions NotIn and DoesNotExist", "  ingress: [{fromEndpoints: [{matchExpressions: [{key: app, operator: NotIn, values: [client]}, {key: tier, operator: DoesNotExist}]}]}]\n", []exchange{
			x("app=other passes", other, in, tcp, 80, true),
			x("app=client is dropped (NotIn)", client, in, tcp, 80, false),
			x("a pod with a tier is dropped (DoesNotExist)", pod("default", "k8s:app=other", "k8s:tier=db"), in, tcp, 80, false),
			x("a pod without app passes (NotIn holds when the key is absent)", pod("default", "k8s:role=x"), in, tcp, 80, true),
		}},
		{"kubernetes.rst: matchExpressions Exists", "  ingress: [{fromEndpoints: [{matchExpressions: [{key: tier, operator: Exists}]}]}]\n", []exchange{
			x("a pod with any tier passes", pod("default", "k8s:tier=web"), in, tcp, 80, true),
			x("a pod without tier is dropped", client, in, tcp, 80, false),
		}},
		// layer3.rst "Entities Based": "cluster ... all network endpoints
		// inside of the local cluster", "all ... combination of all known
		// clusters as well world".
		{"layer3.rst: toEntities cluster", "  egress: [{toEntities: [cluster]}]\n", []exchange{
			x("a pod of any namespace passes", pod("shop", "k8s:app=x"), out, tcp, 80, true),
			x("the host passes", reserved("host"), out, tcp, 80, true),
			x("a remote node passes", reserved("remote-node"), out, tcp, 80, true),
			x("the world is dropped", world, out, tcp, 80, false),
		}},
		{"layer3.rst: toEntities all", "  egress: [{toEntities: [all]}]\n", []exchange{
			x("the world passes", world, out, tcp, 80, true),
			x("a pod passes", other, out, udp, 53, true),
		}},
		{"layer3.rst: the other entities select their reserved identity only", "  egress: [{toEntities: [unmanaged, ingress, health, init, kube-apiserver]}]\n", []exchange{
			x("unmanaged passes", reserved("unmanaged"), out, tcp, 80, true),
			x("ingress passes", reserved("ingress"), out, tcp, 80, true),
			x("health passes", reserved("health"), out, tcp, 4240, true),
			x("init passes", reserved("init"), out, tcp, 80, true),
			x("kube-apiserver passes", reserved("kube-apiserver"), out, tcp, 6443, true),
			x("the host is dropped", reserved("host"), out, tcp, 80, false),
			x("the world is dropped", world, out, tcp, 80, false),
		}},
		// layer3.rst toCIDRSet: "an optional list of prefixes/CIDRs per
		// source prefix/CIDR that are subnets of the destination
		// prefix/CIDR to which communication is not allowed".
		{"layer3.rst: toCIDRSet with except", "  egress: [{toCIDRSet: [{cidr: 198.18.0.0/15, except: [198.18.12.0/24]}, {cidr: 'fd00::/8', except: ['fd00:1::/32']}]}]\n", []exchange{
			x("198.19.0.1 passes", Peer{Identity: 2, Labels: world.Labels, IP: netip.MustParseAddr("198.19.0.1")}, out, tcp, 80, true),
			x("198.18.12.1 is excepted", world, out, tcp, 80, false),
			x("fd00:2::1 passes", Peer{Identity: 2, Labels: world.Labels, IP: netip.MustParseAddr("fd00:2::1")}, out, tcp, 80, true),
			x("fd00:1::1 is excepted", Peer{Identity: 2, Labels: world.Labels, IP: netip.MustParseAddr("fd00:1::1")}, out, tcp, 80, false),
		}},
		// layer4.rst: "Protocol is the L4 protocol. If omitted or empty, any
		// protocol matches. Accepted values: TCP, UDP, ''/ANY".
		{"layer4.rst: protocol ANY and omitted", "  egress: [{toPorts: [{ports: [{port: '53', protocol: ANY}, {port: '8080'}]}]}]\n", []exchange{
			x("TCP 53 passes", world, out, tcp, 53, true),
			x("UDP 53 passes", world, out, udp, 53, true),
			x("SCTP 53 passes", world, out, sctp, 53, true),
			x("UDP 8080 passes (protocol omitted)", world, out, udp, 8080, true),
			x("TCP 54 is dropped", world, out, tcp, 54, false),
			ping("ICMP is no port protocol: dropped", world, icmp4, 8, false),
		}},
		// layer4.rst ICMP fields: type by number or name, family IPv4
		// (the default) or IPv6.
		{"layer4.rst: ICMP types by name, family defaulting to IPv4", "  egress: [{icmps: [{fields: [{type: EchoRequest}, {type: DestinationUnreachable, family: IPv6}]}]}]\n", []exchange{
			ping("ICMP echo request (8) passes", world, icmp4, 8, true),
			ping("ICMPv6 destination unreachable (1) passes", world, icmp6, 1, true),
			ping("ICMPv6 echo request is dropped", world, icmp6, 128, false),
			ping("ICMP destination unreachable (3) is dropped", world, icmp4, 3, false),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pols, err := Parse("semantics.yaml", []byte(head+tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tc.cases {
				if got := x.passes(pols); got != x.want {
					t.Errorf("%s: passes %v, want %v", x.name, got, x.want)
				}
			}
		})
	}

	// What Periscope does not enforce is refused naming the field.
	for _, tc := range []struct{ name, spec, wantErr string }{
		{"a named port", "  ingress: [{toPorts: [{ports: [{port: http, protocol: TCP}]}]}]\n", "http"},
		{"toGroups", "  egress: [{toGroups: [{aws: {securityGroupsIds: [sg-1]}}]}]\n", "toGroups"},
		{"authentication", "  ingress: [{fromEndpoints: [{}], authentication: {mode: required}}]\n", "authentication"},
		{"toRequires", "  egress: [{toRequires: [{matchLabels: {env: prod}}]}]\n", "toRequires"},
		{"an entity of another Cilium (cluster-mesh)", "  egress: [{toEntities: [cluster-mesh]}]\n", "cluster-mesh"},
		{"an ICMP type out of range", "  egress: [{icmps: [{fields: [{type: 256}]}]}]\n", "256"},
	} {
		_, err := Parse("refused.yaml", []byte(head+tc.spec))
		if err == nil || !strings.Contains(err.Error(), "refused.yaml:") || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v; want one naming refused.yaml and %s", tc.name, err, tc.wantErr)
		}
	}
}
