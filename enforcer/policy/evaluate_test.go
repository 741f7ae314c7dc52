package policy

import (
	"net/netip"
	"reflect"
	"testing"
)

func mustParse(t *testing.T, doc string) []*Policy {
	t.Helper()
	pols, err := Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return pols
}

func pod(ns string, labels ...string) Endpoint { return Endpoint{Namespace: ns, Labels: labels} }

// peerPod is a pod with the labels the collector gives it: its own, its
// namespace's name and namespace labels, and the cluster's.
func peerPod(ns string, labels ...string) Peer {
	return Peer{Identity: 1000, Labels: append(labels, "k8s:io.kubernetes.pod.namespace="+ns,
		"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name="+ns, "k8s:io.cilium.k8s.policy.cluster=default")}
}

// inTeam adds the namespace label team=<team> to a peer pod.
func inTeam(p Peer, team string) Peer {
	p.Labels = append(p.Labels, "k8s:io.cilium.k8s.namespace.labels.team="+team)
	return p
}

func world(ip string) Peer {
	return Peer{Identity: 2, Labels: []string{"reserved:world"}, IP: netip.MustParseAddr(ip)}
}

var reservedHost = Peer{Identity: 1, Labels: []string{"reserved:host"}}

const cnp = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
const ccnp = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\n"
const knp = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"

func TestEvaluateSemantics(t *testing.T) {
	backend := pod("shop", "k8s:app=backend")
	frontend := peerPod("shop", "k8s:app=frontend")
	for _, tc := range []struct {
		name   string
		doc    string
		local  Endpoint
		remote Peer
		dir    Direction
		proto  uint8
		port   uint16
		icmp   uint8
		want   Verdict
		by     []string
	}{
		{"an endpoint no policy selects allows all", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {matchLabels: {app: db}}, ingress: [{}]}\n",
			backend, frontend, Ingress, 6, 80, 0, NotSelected, nil},
		{"a selected endpoint denies by default", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {matchLabels: {app: backend}}, ingress: [{}]}\n",
			backend, frontend, Ingress, 6, 80, 0, Denied, nil},
		{"selection is per direction", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{}]}\n",
			backend, frontend, Egress, 6, 80, 0, NotSelected, nil},
		{"ingress: [] does not select", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [], egress: [{}]}\n",
			backend, frontend, Ingress, 6, 80, 0, NotSelected, nil},
		{"a namespaced policy does not select other namespaces", cnp + "metadata: {name: p, namespace: other}\nspec: {endpointSelector: {}, ingress: [{}]}\n",
			backend, frontend, Ingress, 6, 80, 0, NotSelected, nil},
		{"fromEndpoints {} is the policy's namespace", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}\n",
			backend, peerPod("other", "k8s:app=frontend"), Ingress, 6, 80, 0, Denied, nil},
		{"fromEndpoints {} allows the namespace", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}\n",
			backend, frontend, Ingress, 6, 80, 0, Allowed, []string{"shop/p"}},
		{"clusterwide {} is every pod but not world", ccnp + "metadata: {name: p}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}\n",
			backend, world("1.1.1.1"), Ingress, 6, 80, 0, Denied, nil},
		{"cross-namespace selectors work", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]}]}\n",
			backend, peerPod("other", "k8s:app=x"), Ingress, 6, 80, 0, Allowed, []string{"shop/p"}},
		{"policies union", cnp + "metadata: {name: a, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80'}]}]}]}\n---\n" +
			cnp + "metadata: {name: b, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}\n",
			backend, frontend, Ingress, 6, 80, 0, Allowed, []string{"shop/a", "shop/b"}},
		{"deny wins over allow", ccnp + "metadata: {name: lock}\nspec: {endpointSelector: {}, ingressDeny: [{fromEntities: [world]}], ingress: [{fromEntities: [all]}]}\n",
			backend, world("8.8.8.8"), Ingress, 6, 443, 0, DeniedByDeny, []string{"lock"}},
		{"a deny-only policy default-denies the rest", ccnp + "metadata: {name: lock}\nspec: {endpointSelector: {}, ingressDeny: [{fromEntities: [world]}]}\n",
			backend, frontend, Ingress, 6, 443, 0, Denied, nil},
		{"enableDefaultDeny false keeps allow-all", ccnp + "metadata: {name: lock}\nspec: {endpointSelector: {}, enableDefaultDeny: {ingress: false}, ingressDeny: [{fromEntities: [world]}]}\n",
			backend, frontend, Ingress, 6, 443, 0, NotSelected, nil},
		{"entity host", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEntities: [host]}]}\n",
			backend, reservedHost, Ingress, 6, 1, 0, Allowed, []string{"shop/p"}},
		{"entity cluster includes host", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, egress: [{toEntities: [cluster]}]}\n",
			backend, reservedHost, Egress, 17, 53, 0, Allowed, []string{"shop/p"}},
		{"entity cluster excludes world", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, egress: [{toEntities: [cluster]}]}\n",
			backend, world("8.8.8.8"), Egress, 17, 53, 0, Denied, nil},
		{"CIDR matches", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]}]}\n",
			backend, world("10.2.3.4"), Egress, 6, 80, 0, Allowed, []string{"shop/p"}},
		{"CIDR except excludes", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]}]}\n",
			backend, world("10.1.3.4"), Egress, 6, 80, 0, Denied, nil},
		{"CIDR never selects pods", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, egress: [{toCIDR: [0.0.0.0/0]}]}\n",
			backend, Peer{Identity: 300, Labels: []string{"k8s:app=x"}, IP: netip.MustParseAddr("10.0.0.1")}, Egress, 6, 80, 0, Denied, nil},
		{"port ranges include the end", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '8000', endPort: 8080, protocol: TCP}]}]}]}\n",
			backend, frontend, Ingress, 6, 8080, 0, Allowed, []string{"shop/p"}},
		{"port ranges are protocol-specific", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '8000', endPort: 8080, protocol: TCP}]}]}]}\n",
			backend, frontend, Ingress, 17, 8000, 0, Denied, nil},
		{"ANY does not cover ICMP", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '0'}]}]}]}\n",
			backend, frontend, Ingress, 1, 0, 8, Denied, nil},
		{"ICMP types match", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{icmps: [{fields: [{type: EchoRequest}]}]}]}\n",
			backend, frontend, Ingress, 1, 0, 8, Allowed, []string{"shop/p"}},
		{"ICMP family matters", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{icmps: [{fields: [{type: 8}]}]}]}\n",
			backend, frontend, Ingress, 58, 0, 8, Denied, nil},
		{"an extended protocol matches itself", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{protocol: GRE}, {protocol: ESP, port: '0'}]}]}]}\n",
			backend, frontend, Ingress, 47, 0, 0, Allowed, []string{"shop/p"}},
		{"an extended protocol matches only itself", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{protocol: GRE}, {protocol: ESP, port: '0'}]}]}]}\n",
			backend, frontend, Ingress, 51, 0, 0, Denied, nil},
		{"ANY does not cover extended protocols", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '0'}]}]}]}\n",
			backend, frontend, Ingress, 112, 0, 0, Denied, nil},
		{"L3 rules allow every protocol", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEntities: [all]}]}\n",
			backend, frontend, Ingress, 47, 0, 0, Allowed, []string{"shop/p"}},
		{"K8s ingress [{}] allows all", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{}]}\n",
			backend, world("1.2.3.4"), Ingress, 6, 22, 0, Allowed, []string{"shop/k"}},
		{"K8s policyTypes without rules denies", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Egress]}\n",
			backend, frontend, Egress, 6, 22, 0, Denied, nil},
		{"K8s without policyTypes leaves egress open", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}}\n",
			backend, frontend, Egress, 6, 22, 0, NotSelected, nil},
		{"K8s ports default to TCP", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{ports: [{port: 53}]}]}\n",
			backend, frontend, Ingress, 17, 53, 0, Denied, nil},
		{"K8s podSelector peer is the policy's namespace", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}\n",
			backend, peerPod("other"), Ingress, 6, 1, 0, Denied, nil},
		{"K8s namespaceSelector by name", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}, podSelector: {matchLabels: {app: x}}}]}]}\n",
			backend, peerPod("other", "k8s:app=x"), Ingress, 6, 1, 0, Allowed, []string{"shop/k"}},
		{"K8s namespaceSelector on any namespace label", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: red}}}]}]}\n",
			backend, inTeam(peerPod("other"), "red"), Ingress, 6, 1, 0, Allowed, []string{"shop/k"}},
		{"K8s namespaceSelector excludes namespaces without the label", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: red}}}]}]}\n",
			backend, inTeam(peerPod("other"), "blue"), Ingress, 6, 1, 0, Denied, nil},
		{"K8s namespaceSelector DoesNotExist selects pods only", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: DoesNotExist}]}}]}]}\n",
			backend, world("10.0.0.1"), Ingress, 6, 1, 0, Denied, nil},
		{"a namespace-label selector is not confined to the policy's namespace", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEntities: [all]}], ingressDeny: [{fromEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.team: red}}]}]}\n",
			backend, inTeam(peerPod("other"), "red"), Ingress, 6, 1, 0, DeniedByDeny, []string{"shop/p"}},
		{"a namespace-label selector with the k8s source", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {k8s:io.cilium.k8s.namespace.labels.team: red}}]}]}\n",
			backend, inTeam(peerPod("other"), "red"), Ingress, 6, 1, 0, Allowed, []string{"shop/p"}},
		{"a selector on a reserved label is not namespaced", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {reserved:host: ''}}]}]}\n",
			backend, reservedHost, Ingress, 6, 1, 0, Allowed, []string{"shop/p"}},
		{"a clusterwide selector selects pods only", ccnp + "metadata: {name: c}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchExpressions: [{key: app, operator: DoesNotExist}]}]}]}\n",
			backend, world("10.0.0.1"), Ingress, 6, 1, 0, Denied, nil},
		{"the cluster label selects the local cluster's pods", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {io.cilium.k8s.policy.cluster: default}}]}]}\n",
			backend, frontend, Ingress, 6, 1, 0, Allowed, []string{"shop/p"}},
		{"another cluster's name selects nothing here", cnp + "metadata: {name: p, namespace: shop}\nspec: {endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {io.cilium.k8s.policy.cluster: east}}]}]}\n",
			backend, frontend, Ingress, 6, 1, 0, Denied, nil},
		{"K8s ipBlock except", knp + "metadata: {name: k, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.9.0.0/16]}}]}]}\n",
			backend, world("10.9.0.1"), Ingress, 6, 1, 0, Denied, nil},
		{"nodeSelector rules select only the host", ccnp + "metadata: {name: h}\nspec: {nodeSelector: {}, ingress: [{}]}\n",
			backend, frontend, Ingress, 6, 1, 0, NotSelected, nil},
		{"endpointSelector rules never select the host", ccnp + "metadata: {name: h}\nspec: {endpointSelector: {}, ingress: [{}]}\n",
			Endpoint{Labels: []string{"reserved:host"}}, frontend, Ingress, 6, 1, 0, NotSelected, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Evaluate(mustParse(t, tc.doc), tc.local, tc.remote, tc.dir, tc.proto, tc.port, tc.icmp)
			if d.Verdict != tc.want || !reflect.DeepEqual(d.Refs(), tc.by) {
				t.Fatalf("got %v %v, want %v %v", d.Verdict, d.Refs(), tc.want, tc.by)
			}
		})
	}
}
