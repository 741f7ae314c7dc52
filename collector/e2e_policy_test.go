package collector_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/policyapi"
	"github.com/periscope-dev/periscope/datapath/netlab"
)

// Probe builders: tcp/udp/icmp make a probe, fwd/drop/audit say what it
// must give, six makes it IPv6.
func tcp(from, to string, port int) probe { return probe{from: from, to: to, proto: "tcp", port: port} }
func udp(from, to string, port int) probe { return probe{from: from, to: to, proto: "udp", port: port} }
func icmp(from, to string) probe          { return probe{from: from, to: to, proto: "icmp"} }

// raw sends one packet of IP protocol proto (GRE, ESP...) from a raw socket;
// it gets through when the destination's raw socket reads it.
func raw(from, to string, proto int) probe {
	return probe{from: from, to: to, proto: "raw", port: proto}
}

func (p probe) fwd(names ...string) probe {
	p.want, p.names = api.VerdictForwarded, names
	return p
}

func (p probe) denied() probe {
	p.want, p.reason = api.VerdictDropped, api.DropReasonPolicyDenied
	return p
}

func (p probe) deny(names ...string) probe {
	p.want, p.reason, p.names = api.VerdictDropped, api.DropReasonPolicyDeny, names
	return p
}

func (p probe) audit(names ...string) probe {
	p.want, p.names = api.VerdictAudit, names
	return p
}

func (p probe) six() probe {
	p.v6 = true
	return p
}

// cnp is a CiliumNetworkPolicy named name in namespace ns with spec (YAML
// indented by two spaces).
func cnp(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s---\n", name, ns, spec)
}

func ccnp(name, spec string) string {
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: %s}\nspec:\n%s---\n", name, spec)
}

func knp(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s---\n", name, ns, spec)
}

// nobody selects no endpoint: a rule with it only turns default deny on.
const nobody = "[{matchLabels: {app: nobody}}]"

// policyScenario applies policies (replacing every applied one unless keep)
// or deletes some, then runs its probes in order.
type policyScenario struct {
	name   string
	yaml   string
	keep   bool     // keep the policies in force before
	delete []string // "namespace/name" to delete before the probes
	// forget names pods whose IPv6 neighbour entries are removed for the
	// probes, so they need neighbour discovery under the policy.
	forget []string
	probes []probe
}

func policyScenarios(outsider, outsider2, subnet4 string) []policyScenario {
	return []policyScenario{
		{name: "no policy forwards everything", probes: []probe{
			tcp("client", "server", 80).fwd(), tcp("client", "server", 80).six().fwd(), udp("client", "db", 53).fwd(),
			icmp("client", "server").fwd(), tcp("outsider", "server", 80).fwd()}},
		{name: "allow-all ingress", yaml: cnp("default", "allow-all", "  endpointSelector: {}\n  ingress: [{fromEntities: [all]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/allow-all"), tcp("outsider", "server", 443).fwd("default/allow-all"),
				tcp("client", "db", 80).fwd()}},
		{name: "default deny ingress drops with POLICY_DENIED", yaml: cnp("default", "deny-in", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: "+nobody+"\n"),
			probes: []probe{tcp("client", "server", 80).denied(), tcp("client", "server", 80).six().denied(), udp("client", "server", 53).denied(),
				icmp("client", "server").denied(), tcp("server", "client2", 80).fwd(), tcp("client", "client2", 80).fwd()}},
		{name: "default deny egress drops with POLICY_DENIED", yaml: cnp("default", "deny-out", "  endpointSelector: {matchLabels: {app: client}}\n  egress:\n  - toEndpoints: "+nobody+"\n"),
			probes: []probe{tcp("client", "server", 80).denied(), icmp("client", "server").six().denied(), tcp("client2", "server", 80).fwd(),
				tcp("server", "client", 80).fwd()}},
		{name: "label allow admits only the selected peer", yaml: cnp("default", "from-client", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/from-client"), tcp("client", "server", 80).six().fwd("default/from-client"),
				tcp("client2", "server", 80).denied(), tcp("client2", "server", 80).six().denied()}},
		{name: "label allow on a port", yaml: cnp("default", "client-80", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/client-80"), tcp("client", "server", 443).denied(), udp("client", "server", 53).denied()}},
		{name: "matchExpressions In", yaml: cnp("default", "expr-in", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: app, operator: In, values: [client, client2]}]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/expr-in"), tcp("client2", "server", 80).fwd("default/expr-in"), tcp("audited", "server", 80).denied()}},
		{name: "matchExpressions NotIn", yaml: cnp("default", "expr-notin", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: app, operator: NotIn, values: [client]}]}]\n"),
			probes: []probe{tcp("client", "server", 80).denied(), tcp("client2", "server", 80).fwd("default/expr-notin")}},
		{name: "matchExpressions Exists", yaml: cnp("default", "expr-exists", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: tier, operator: Exists}]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/expr-exists"), tcp("client2", "server", 80).denied()}},
		{name: "matchExpressions DoesNotExist", yaml: cnp("default", "expr-dne", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: tier, operator: DoesNotExist}]}]\n"),
			probes: []probe{tcp("client", "server", 80).denied(), tcp("client2", "server", 80).fwd("default/expr-dne")}},
		{name: "fromCIDR admits one address", yaml: cnp("default", "cidr", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromCIDR: ["+outsider+"/32]\n"),
			probes: []probe{tcp("outsider", "server", 80).fwd("default/cidr"), tcp("outsider2", "server", 80).denied()}},
		{name: "fromCIDRSet with except", yaml: cnp("default", "cidr-except", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromCIDRSet: [{cidr: "+subnet4+", except: ["+outsider2+"/32]}]\n"),
			probes: []probe{tcp("outsider", "server", 80).fwd("default/cidr-except"), tcp("outsider2", "server", 80).denied()}},
		{name: "entity world", yaml: cnp("default", "world", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [world]}]\n"),
			probes: []probe{tcp("outsider", "server", 80).fwd("default/world"), tcp("client", "server", 80).denied()}},
		{name: "entity host", yaml: cnp("default", "host", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [host]}]\n"),
			probes: []probe{tcp("host", "server", 80).fwd("default/host"), tcp("client", "server", 80).denied(), tcp("outsider", "server", 80).denied()}},
		{name: "entity cluster", yaml: cnp("default", "cluster", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [cluster]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/cluster"), tcp("db", "server", 80).fwd("default/cluster"), tcp("outsider", "server", 80).denied()}},
		{name: "entity all", yaml: cnp("default", "all", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [all]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/all"), tcp("outsider", "server", 80).fwd("default/all")}},
		{name: "port range with endPort", yaml: cnp("default", "range", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"9000\", endPort: 9010, protocol: TCP}]}]\n"),
			probes: []probe{tcp("client", "server", 9000).fwd("default/range"), tcp("client", "server", 9005).fwd("default/range"),
				tcp("client", "server", 9010).fwd("default/range"), tcp("client", "server", 9011).denied(), tcp("client", "server", 80).denied()}},
		{name: "UDP port allowed, TCP on it not", yaml: cnp("default", "dns", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"53\", protocol: UDP}]}]\n"),
			probes: []probe{udp("client", "server", 53).fwd("default/dns"), udp("client", "server", 53).six().fwd("default/dns"), tcp("client", "server", 80).denied()}},
		{name: "TCP port allowed, UDP on it not", yaml: cnp("default", "tcp53", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"53\", protocol: TCP}]}]\n"),
			probes: []probe{udp("client", "server", 53).denied()}},
		{name: "ICMPv4 echo allowed by icmps", yaml: cnp("default", "ping4", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    icmps: [{fields: [{type: 8, family: IPv4}]}]\n"),
			probes: []probe{icmp("client", "server").fwd("default/ping4"), icmp("client", "server").six().denied(), tcp("client", "server", 80).denied()}},
		{name: "IPv6 neighbour discovery passes a default deny", forget: []string{"client", "server"},
			yaml:   cnp("default", "dns6", "  endpointSelector: {matchLabels: {app: server}}\n  egress: [{toEndpoints: "+nobody+"}]\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"53\", protocol: UDP}]}]\n"),
			probes: []probe{udp("client", "server", 53).six().fwd("default/dns6"), tcp("client", "server", 80).six().denied()}},
		{name: "ICMPv6 echo allowed by icmps", yaml: cnp("default", "ping6", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    icmps: [{fields: [{type: EchoRequest, family: IPv6}]}]\n"),
			probes: []probe{icmp("client", "server").six().fwd("default/ping6"), icmp("client", "server").denied()}},
		{name: "egress allow is not ingress allow", yaml: cnp("default", "client-out", "  endpointSelector: {matchLabels: {app: client}}\n  egress:\n  - toEndpoints: [{matchLabels: {app: server}}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/client-out"), tcp("client", "client2", 80).denied(),
				tcp("server", "client", 80).fwd(), udp("client", "server", 53).fwd("default/client-out")}},
		{name: "egress to another namespace on a port", yaml: cnp("default", "to-db", "  endpointSelector: {matchLabels: {app: client}}\n  egress:\n  - toEndpoints: [{matchLabels: {app: db, k8s:io.kubernetes.pod.namespace: other}}]\n    toPorts: [{ports: [{port: \"5432\"}]}]\n"),
			probes: []probe{tcp("client", "db", 5432).fwd("default/to-db"), tcp("client", "db", 80).denied(), tcp("client", "server", 5432).denied()}},
		{name: "ingressDeny wins over allow", yaml: cnp("default", "allow-cluster", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [cluster]}]\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"),
			probes: []probe{tcp("client", "server", 80).deny("default/allow-cluster"), tcp("client", "server", 80).six().deny("default/allow-cluster"),
				tcp("client2", "server", 80).fwd("default/allow-cluster")}},
		{name: "egressDeny on a port wins over allow", yaml: cnp("default", "egress-guard", "  endpointSelector: {matchLabels: {app: client}}\n  egress: [{toEntities: [all]}]\n  egressDeny:\n  - toEndpoints: [{matchLabels: {app: server}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n"),
			probes: []probe{tcp("client", "server", 80).deny("default/egress-guard"), tcp("client", "server", 443).fwd("default/egress-guard"),
				tcp("client", "db", 80).fwd("default/egress-guard")}},
		{name: "a deny in one policy beats an allow in another", yaml: cnp("default", "allow-client", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n") +
			cnp("default", "deny-client-80", "  endpointSelector: {matchLabels: {app: server}}\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n"),
			probes: []probe{tcp("client", "server", 80).deny("default/deny-client-80"), tcp("client", "server", 443).fwd("default/allow-client")}},
		{name: "union of two policies names both", yaml: cnp("default", "by-app", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"80\"}]}]\n") +
			cnp("default", "by-tier", "  endpointSelector: {matchLabels: {tier: backend}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {tier: frontend}}]\n    toPorts: [{ports: [{port: \"80\"}]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/by-app", "default/by-tier"), tcp("client2", "server", 80).denied()}},
		{name: "union of two policies on different ports", yaml: cnp("default", "web", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"80\"}]}]\n") +
			cnp("default", "tls", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"443\"}]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/web"), tcp("client", "server", 443).fwd("default/tls"), tcp("client", "server", 5432).denied()}},
		{name: "fromEndpoints is limited to the policy's namespace", yaml: cnp("other", "db-local", "  endpointSelector: {matchLabels: {app: db}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n"),
			probes: []probe{tcp("client", "db", 5432).denied()}},
		{name: "cross-namespace selector with the namespace label", yaml: cnp("other", "db-from-default", "  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: default}}]\n"),
			probes: []probe{tcp("client", "db", 5432).fwd("other/db-from-default"), tcp("client2", "db", 5432).denied(), tcp("client", "server", 80).fwd()}},
		{name: "CiliumClusterwideNetworkPolicy selects in every namespace", yaml: ccnp("ccnp-clients", "  endpointSelector: {matchExpressions: [{key: app, operator: In, values: [server, db]}]}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("ccnp-clients"), tcp("client", "db", 80).fwd("ccnp-clients"), tcp("client2", "db", 80).denied()}},
		{name: "CiliumClusterwideNetworkPolicy denying world", yaml: ccnp("lockdown", "  endpointSelector: {}\n  ingressDeny: [{fromEntities: [world]}]\n  ingress: [{fromEntities: [all]}]\n"),
			probes: []probe{tcp("outsider", "server", 80).deny("lockdown"), tcp("outsider", "db", 80).deny("lockdown"), tcp("client", "db", 80).fwd("lockdown")}},
		{name: "NetworkPolicy podSelector and ports", yaml: knp("default", "knp-web", "  podSelector: {matchLabels: {app: server}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n    ports: [{port: 80}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/knp-web"), tcp("client", "server", 443).denied(), tcp("client2", "server", 80).denied(),
				tcp("client", "server", 80).six().fwd("default/knp-web")}},
		{name: "NetworkPolicy ipBlock", yaml: knp("default", "knp-ipblock", "  podSelector: {matchLabels: {app: server}}\n  ingress:\n  - from: [{ipBlock: {cidr: "+subnet4+", except: ["+outsider2+"/32]}}]\n"),
			probes: []probe{tcp("outsider", "server", 80).fwd("default/knp-ipblock"), tcp("outsider2", "server", 80).denied()}},
		{name: "NetworkPolicy egress stays in the namespace", yaml: knp("default", "knp-egress", "  podSelector: {matchLabels: {app: client}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{podSelector: {}}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/knp-egress"), tcp("client", "db", 80).denied(), tcp("client2", "db", 80).fwd()}},
		{name: "NetworkPolicy namespaceSelector", yaml: knp("other", "knp-ns", "  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}}]\n"),
			probes: []probe{tcp("client", "db", 5432).fwd("other/knp-ns"), tcp("outsider", "db", 5432).denied()}},
		{name: "ingressDeny by namespace label denies across namespaces", yaml: cnp("default", "deny-data", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {io.cilium.k8s.namespace.labels.team: data}}]\n"),
			probes: []probe{tcp("db", "server", 80).deny("default/deny-data"), tcp("db", "server", 80).six().deny("default/deny-data"), tcp("client", "server", 80).fwd("default/deny-data")}},
		{name: "fromEndpoints by namespace label admits that namespace only", yaml: cnp("other", "db-from-web", "  endpointSelector: {matchLabels: {app: db}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.cilium.k8s.namespace.labels.team: web, app: client}}]\n"),
			probes: []probe{tcp("client", "db", 5432).fwd("other/db-from-web"), tcp("client2", "db", 5432).denied()}},
		{name: "NetworkPolicy namespaceSelector on a namespace label", yaml: knp("default", "knp-team", "  podSelector: {matchLabels: {app: server}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: data}}}]\n"),
			probes: []probe{tcp("db", "server", 80).fwd("default/knp-team"), tcp("client", "server", 80).denied(), tcp("outsider", "server", 80).denied()}},
		{name: "the cluster label selects the cluster's pods", yaml: ccnp("this-cluster", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {io.cilium.k8s.policy.cluster: default}}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("this-cluster"), tcp("db", "server", 80).fwd("this-cluster"), tcp("outsider", "server", 80).denied()}},
		{name: "another cluster's label selects nothing here", yaml: ccnp("east-only", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {io.cilium.k8s.policy.cluster: east}}]\n"),
			probes: []probe{tcp("client", "server", 80).denied()}},
		{name: "a host policy (nodeSelector) default-denies the host's ingress", yaml: ccnp("host-web", "  nodeSelector: {matchLabels: {node-access: ssh}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n"),
			probes: []probe{tcp("client", "host", 80).fwd("host-web"), tcp("client", "host", 80).six().fwd("host-web"), tcp("client", "host", 443).denied(),
				tcp("client2", "host", 80).denied(), tcp("outsider", "host", 80).denied(), icmp("client", "host").denied(),
				tcp("host", "server", 80).fwd(), tcp("client", "server", 80).fwd(), tcp("outsider", "server", 80).fwd()}},
		{name: "a host policy whose nodeSelector matches no node enforces nothing", yaml: ccnp("other-nodes", "  nodeSelector: {matchExpressions: [{key: node-access, operator: In, values: [none]}]}\n  ingress: [{fromEntities: [world]}]\n"),
			probes: []probe{tcp("client", "host", 80).fwd(), tcp("outsider", "host", 80).fwd()}},
		{name: "host policy entities world and remote-node", yaml: ccnp("host-entities", "  nodeSelector: {}\n  ingress: [{fromEntities: [remote-node]}]\n") +
			ccnp("host-world-443", "  nodeSelector: {}\n  ingress:\n  - fromEntities: [world]\n    toPorts: [{ports: [{port: \"443\"}]}]\n"),
			probes: []probe{tcp("node2", "host", 80).fwd("host-entities"), tcp("node2", "host", 80).six().fwd("host-entities"), tcp("outsider", "host", 80).denied(),
				tcp("outsider", "host", 443).fwd("host-world-443"), tcp("client", "host", 443).denied()}},
		{name: "a host policy's egress judges what the host starts", yaml: ccnp("host-out", "  nodeSelector: {}\n  egress: [{toEntities: [world]}, {toEndpoints: [{matchLabels: {app: db}}]}]\n"),
			probes: []probe{tcp("host", "outsider", 80).fwd("host-out"), tcp("host", "db", 5432).fwd("host-out"), tcp("host", "server", 80).denied(),
				tcp("client", "host", 80).fwd(), tcp("client", "server", 80).fwd()}},
		{name: "a host policy's ingressDeny wins, and pods' policy sees the host as host", yaml: ccnp("host-guard", "  nodeSelector: {}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n") +
			cnp("default", "server-from-host", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [host]}]\n"),
			probes: []probe{tcp("client", "host", 80).deny("host-guard"), tcp("client2", "host", 80).fwd("host-guard"),
				tcp("host", "server", 80).fwd("default/server-from-host"), tcp("client2", "server", 80).denied()}},
		{name: "a host policy's nodeSelector selects by the node's labels only", yaml: ccnp("not-pods", "  nodeSelector: {matchLabels: {app: server}}\n  ingress: [{}]\n"),
			probes: []probe{tcp("client", "host", 80).fwd(), tcp("client", "server", 80).fwd()}},
		// Each (from, to, protocol, family) once in the suite: a raw flow has
		// no ports, so a second probe would be the first one's connection.
		{name: "extended IP protocols in toPorts (port-less)", yaml: cnp("default", "tunnels", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{protocol: GRE}, {protocol: ESP, port: \"0\"}, {protocol: AH}, {protocol: VRRP}, {protocol: IPIP}, {protocol: IPV6}, {protocol: IGMP}]}]\n"),
			probes: []probe{raw("client", "server", 47).fwd("default/tunnels"), raw("client", "server", 50).fwd("default/tunnels"), raw("client", "server", 51).fwd("default/tunnels"),
				raw("client", "server", 112).fwd("default/tunnels"), raw("client", "server", 4).fwd("default/tunnels"), raw("client", "server", 41).fwd("default/tunnels"),
				raw("client", "server", 2).fwd("default/tunnels"), raw("client", "server", 47).six().fwd("default/tunnels"), raw("client", "server", 50).six().fwd("default/tunnels"),
				raw("client2", "server", 47).denied(), raw("client", "server", 103).denied(), udp("client", "server", 53).denied()}},
		{name: "an extended protocol allows only itself", yaml: cnp("default", "gre-only", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client2}}]\n    toPorts: [{ports: [{protocol: GRE}]}]\n"),
			probes: []probe{raw("client2", "server", 47).six().fwd("default/gre-only"), raw("client2", "server", 50).denied(), raw("db", "server", 47).denied()}},
		{name: "egressDeny of an extended protocol", yaml: cnp("default", "no-esp-out", "  endpointSelector: {matchLabels: {app: client2}}\n  egress: [{toEntities: [all]}]\n  egressDeny:\n  - toPorts: [{ports: [{protocol: ESP}]}]\n"),
			probes: []probe{raw("client2", "db", 50).deny("default/no-esp-out"), raw("client2", "db", 47).fwd("default/no-esp-out")}},
		{name: "every peer and port field of ingressDeny", yaml: cnp("default", "deny-fields", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny:\n"+
			"  - fromEndpoints: [{matchExpressions: [{key: app, operator: In, values: [client2]}]}]\n"+
			"  - fromCIDR: ["+outsider+"/32]\n    toPorts: [{ports: [{port: \"9000\", endPort: 9005, protocol: TCP}]}]\n"+
			"  - fromCIDRSet: [{cidr: "+subnet4+", except: ["+outsider+"/32]}]\n    toPorts: [{ports: [{port: \"80\"}]}]\n"+
			"  - fromEntities: [host]\n"+
			"  - icmps: [{fields: [{type: EchoRequest, family: IPv4}]}]\n"),
			probes: []probe{tcp("client2", "server", 80).deny("default/deny-fields"), tcp("outsider", "server", 9000).deny("default/deny-fields"),
				tcp("outsider", "server", 80).fwd("default/deny-fields"), tcp("outsider2", "server", 80).deny("default/deny-fields"),
				tcp("host", "server", 80).deny("default/deny-fields"), icmp("client", "server").deny("default/deny-fields"), tcp("client", "server", 80).fwd("default/deny-fields")}},
		{name: "every peer and port field of egress", yaml: cnp("default", "egress-fields", "  endpointSelector: {matchLabels: {app: client}}\n  egress:\n"+
			"  - toEndpoints: [{matchExpressions: [{key: app, operator: In, values: [server]}]}]\n    toPorts: [{ports: [{port: \"80\", endPort: 81, protocol: TCP}]}]\n"+
			"  - toCIDR: ["+outsider+"/32]\n"+
			"  - toCIDRSet: [{cidr: "+subnet4+", except: ["+outsider+"/32]}]\n    toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n"+
			"  - toEntities: [host]\n"+
			"  - icmps: [{fields: [{type: 128, family: IPv6}]}]\n"),
			probes: []probe{tcp("client", "server", 80).fwd("default/egress-fields"), tcp("client", "server", 443).denied(), tcp("client", "outsider", 80).fwd("default/egress-fields"),
				tcp("client", "outsider2", 443).fwd("default/egress-fields"), tcp("client", "outsider2", 80).denied(), tcp("client", "host", 80).fwd("default/egress-fields"),
				icmp("client", "server").six().fwd("default/egress-fields"), icmp("client", "server").denied()}},
		{name: "every peer and port field of egressDeny", yaml: cnp("default", "egress-deny-fields", "  endpointSelector: {matchLabels: {app: client2}}\n  egress: [{toEntities: [all]}]\n  egressDeny:\n"+
			"  - toEndpoints: [{matchExpressions: [{key: app, operator: In, values: [server]}]}]\n    toPorts: [{ports: [{port: \"80\", endPort: 81, protocol: TCP}]}]\n"+
			"  - toCIDR: ["+outsider+"/32]\n"+
			"  - toCIDRSet: [{cidr: "+subnet4+", except: ["+outsider+"/32]}]\n"+
			"  - toEntities: [host]\n"+
			"  - icmps: [{fields: [{type: 8, family: IPv4}]}]\n"),
			probes: []probe{tcp("client2", "server", 80).deny("default/egress-deny-fields"), tcp("client2", "server", 443).fwd("default/egress-deny-fields"),
				tcp("client2", "outsider", 80).deny("default/egress-deny-fields"), tcp("client2", "outsider2", 80).deny("default/egress-deny-fields"),
				tcp("client2", "host", 80).deny("default/egress-deny-fields"), icmp("client2", "db").deny("default/egress-deny-fields"), tcp("client2", "db", 5432).fwd("default/egress-deny-fields")}},
		{name: "enableDefaultDeny per direction", yaml: cnp("default", "no-default-deny", "  endpointSelector: {matchLabels: {app: server}}\n  enableDefaultDeny: {ingress: false, egress: true}\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n"),
			probes: []probe{tcp("client", "server", 80).deny("default/no-default-deny"), tcp("client2", "server", 80).fwd(),
				// egress: true without egress rules puts nothing in default
				// deny, as in Cilium (a policy entry per rule).
				tcp("server", "client2", 80).fwd()}},
		{name: "a policy in force denies", yaml: cnp("default", "temp-deny", "  endpointSelector: {matchLabels: {app: server}}\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n  ingress: [{fromEntities: [all]}]\n"),
			probes: []probe{tcp("client", "server", 80).deny("default/temp-deny")}},
		{name: "removing it restores access", keep: true, delete: []string{"default/temp-deny"},
			probes: []probe{tcp("client", "server", 80).fwd(), udp("client", "server", 53).fwd()}},
		{name: "audit mode reports and forwards", yaml: cnp("default", "audited-in", "  endpointSelector: {matchLabels: {app: audited}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client2}}]}]\n"),
			probes: []probe{tcp("client", "audited", 80).audit(), tcp("client2", "audited", 80).fwd("default/audited-in"), tcp("client", "server", 80).fwd()}},
		{name: "audit mode reports a deny and forwards", yaml: cnp("default", "audited-deny", "  endpointSelector: {matchLabels: {app: audited}}\n  ingress: [{fromEntities: [all]}]\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n"),
			probes: []probe{tcp("client", "audited", 80).audit("default/audited-deny"), icmp("client", "audited").audit("default/audited-deny"),
				tcp("client2", "audited", 80).fwd("default/audited-deny")}},
	}
}

// TestE2EPolicyConnectivity is a connectivity suite in the style of
// `cilium connectivity test`: one lab, one collector over the real datapath,
// policies applied through the collector's HTTP API, and for every scenario
// probes whose connectivity and flow records (verdict, drop reason,
// deciding policies) must match. It ends with a bad policy refused whole
// and a collector restart that keeps enforcing.
func TestE2EPolicyConnectivity(t *testing.T) {
	pl := newPolicyLab(t)
	node := pl.start(t)
	out := pl.pods["outsider"].IPv4
	sub := out.String()[:strings.LastIndex(out.String(), ".")] + ".0/24"
	scenarios := policyScenarios(out.String(), pl.pods["outsider2"].IPv4.String(), sub)
	count := 0
	for _, sc := range scenarios {
		ok := t.Run(sc.name, func(t *testing.T) {
			if !sc.keep {
				node.deleteAll(t)
			}
			for _, ref := range sc.delete {
				req, _ := http.NewRequest(http.MethodDelete, node.base+"/api/v1/policies/"+ref, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("DELETE %s: %v %v", ref, err, resp)
				}
				resp.Body.Close()
			}
			if sc.yaml != "" {
				if code, res := node.postPolicies(t, sc.yaml); code != http.StatusOK {
					t.Fatalf("POST policies: %d %v", code, res.Errors)
				}
			}
			if len(sc.forget) > 0 {
				defer pl.forgetNeighbours(t, sc.forget...)()
			}
			for _, pr := range sc.probes {
				pl.check(t, pr, false)
			}

		})
		count++
		if !ok && os.Getenv("PERISCOPE_POLICY_FAILFAST") != "" {
			t.FailNow()
		}
	}

	t.Run("a bad policy is refused whole and the previous one keeps enforcing", func(t *testing.T) {
		node.deleteAll(t)
		good := cnp("default", "keep-me", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n")
		if code, res := node.postPolicies(t, good); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, res.Errors)
		}
		rev := node.dp.PolicyRevision()
		bad := cnp("default", "deny-all", "  endpointSelector: {}\n  ingressDeny: [{fromEntities: [all]}]\n") +
			cnp("default", "broken", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: app, operator: Maybe}]}]\n")
		code, res := node.postPolicies(t, bad)
		if code != http.StatusBadRequest || len(res.Errors) == 0 || !strings.HasPrefix(res.Errors[0], "request:") {
			t.Fatalf("POST bad policy: %d %v, want 400 with request:line:column errors", code, res.Errors)
		}
		t.Logf("refused: %v", res.Errors)
		if got := node.dp.PolicyRevision(); got != rev {
			t.Errorf("policy revision %d after a refused policy, want %d", got, rev)
		}
		if names := node.store.List(); len(names) != 1 || names[0].Name != "keep-me" {
			t.Errorf("policies after a refused apply: %+v", names)
		}
		pl.check(t, tcp("client", "server", 80).fwd("default/keep-me"), false)
		pl.check(t, tcp("client2", "server", 80).denied(), false)
		resp, err := http.Get(node.base + "/api/v1/policies/default/keep-me")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET policy: %v %v", err, resp)
		}
		resp.Body.Close()
	})
	count++

	t.Run("identities come from the allocator", func(t *testing.T) {
		resp, err := http.Get(node.base + "/api/v1/identities")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ids []policyapi.Identity
		if err := json.NewDecoder(resp.Body).Decode(&ids); err != nil {
			t.Fatal(err)
		}
		byLabels := map[string]uint32{}
		for _, i := range ids {
			byLabels[strings.Join(i.Labels, ",")] = i.ID
		}
		if byLabels["reserved:world"] != 2 || byLabels["reserved:host"] != 1 {
			t.Errorf("reserved identities missing: %v", ids)
		}
		srv := "k8s:app=server,k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default,k8s:io.cilium.k8s.namespace.labels.team=web," +
			"k8s:io.cilium.k8s.policy.cluster=default,k8s:io.kubernetes.pod.namespace=default,k8s:tier=backend"
		if byLabels[srv] < 256 {
			t.Errorf("server has no cluster identity: %v", ids)
		}
		if _, err := os.Stat(filepath.Join(pl.stateDir, "identities.json")); err != nil {
			t.Errorf("identity state not persisted: %v", err)
		}
	})

	t.Run("a collector restart keeps enforcing", func(t *testing.T) {
		node.deleteAll(t)
		yaml := cnp("default", "restart", "  endpointSelector: {matchLabels: {app: server}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client2}}]}]\n")
		if code, res := node.postPolicies(t, yaml); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, res.Errors)
		}
		pl.check(t, tcp("client", "server", 80).denied(), false)
		pl.check(t, tcp("client2", "server", 80).fwd("default/restart"), false)
		identsBefore := node.c.Registry().Endpoints()
		revBefore := node.store.List()[0].Revision

		// A clean stop (SIGTERM): with a policy in force the collector does
		// not detach and the datapath leaves its links and maps pinned.
		node.stop(t)
		if err := node.dp.Close(); err != nil {
			t.Fatalf("close the datapath: %v", err)
		}
		pl.check(t, tcp("client", "server", 80).denied(), true)
		pl.check(t, tcp("client2", "server", 80).fwd(), true)
		pl.check(t, icmp("client", "server").denied(), true)

		start := time.Now()
		node = pl.start(t) // adopts the pinned state and swaps its programs in
		t.Logf("restarted in %v", time.Since(start))
		if got := node.store.List(); len(got) != 1 || got[0].Name != "restart" || got[0].Revision != revBefore {
			t.Fatalf("policies after restart: %+v, want restart at revision %d", got, revBefore)
		}
		after := node.c.Registry().Endpoints()
		for i := range identsBefore {
			if identsBefore[i].Identity != after[i].Identity {
				t.Errorf("%s: identity %d before restart, %d after", after[i].Name, identsBefore[i].Identity, after[i].Identity)
			}
		}
		pl.check(t, tcp("client", "server", 80).denied(), false)
		pl.check(t, tcp("client2", "server", 80).fwd("default/restart"), false)
		pl.check(t, tcp("client2", "server", 80).six().fwd("default/restart"), false)
		node.deleteAll(t)
		pl.check(t, tcp("client", "server", 80).fwd(), false)
	})
	count++
	t.Logf("%d scenarios", count)
}

// forgetNeighbours removes the permanent IPv6 neighbour entries quietPods
// gave the pods named, so their next IPv6 packets need neighbour discovery,
// and returns a function restoring them.
func (pl *policyLab) forgetNeighbours(t *testing.T, names ...string) (restore func()) {
	t.Helper()
	for _, name := range names {
		p := pl.pods[name]
		if out, err := p.Command(t.Context(), "ip", "-6", "neigh", "flush", "dev", "eth0", "nud", "permanent").CombinedOutput(); err != nil {
			t.Fatalf("forget neighbours of %s: %v: %s", name, err, out)
		}
	}
	return func() {
		all := make([]*netlab.Pod, 0, len(pl.pods))
		for _, p := range pl.pods {
			all = append(all, p)
		}
		quietPods(t, pl.lab, all...)
	}
}
