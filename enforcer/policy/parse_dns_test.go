package policy

import (
	"reflect"
	"strings"
	"testing"
)

const dnsHead = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {app: client}}\n"

// kubeDNS is the usual DNS allow: the kube-dns pods on port 53 (UDP and
// TCP), every name under example.com and one name elsewhere.
const kubeDNS = `  egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns:
        - matchPattern: "*.example.com"
        - matchName: API.example.org
`

func TestRulesDNSParseWithTheirPorts(t *testing.T) {
	pols, err := Parse("x.yaml", []byte(dnsHead+kubeDNS))
	if err != nil {
		t.Fatal(err)
	}
	pr := pols[0].Rules[0].Egress.Allow[0]
	// ANY with DNS rules is UDP and TCP: DNS has no SCTP.
	if want := []PortRange{{6, 53, 53}, {17, 53, 53}}; !reflect.DeepEqual(pr.Ports, want) {
		t.Fatalf("ports %+v, want %+v", pr.Ports, want)
	}
	if !pr.HasDNS() || len(pr.DNS) != 1 || len(pr.DNS[0].Names) != 2 {
		t.Fatalf("DNS part: %+v", pr.DNS)
	}
	names, restricted := pr.DNSFor(17, 53)
	if !restricted || len(names) != 2 || names[1].Selector().MatchName != "API.example.org" {
		t.Fatalf("DNSFor(udp 53) = %v %v", names, restricted)
	}
	if !pols[0].Rules[0].Egress.DefaultDeny {
		t.Fatal("an egress rule with DNS rules must put the endpoint in egress default deny")
	}
}

func TestAPortItemWithoutDNSRulesMakesItsPortsUnrestricted(t *testing.T) {
	doc := dnsHead + `  egress:
  - toEndpoints: [{matchLabels: {app: dns}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules: {dns: [{matchName: a.example.com}]}
    - ports: [{port: "53", protocol: TCP}]
`
	pols, err := Parse("x.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pr := pols[0].Rules[0].Egress.Allow[0]
	if _, restricted := pr.DNSFor(6, 53); restricted {
		t.Fatal("TCP 53 has no DNS rule in this peer rule: every query there passes")
	}
	if names, restricted := pr.DNSFor(17, 53); !restricted || len(names) != 1 {
		t.Fatalf("UDP 53: %v %v", names, restricted)
	}
	if got := pr.DNSPorts(); !reflect.DeepEqual(got, []PortRange{{17, 53, 53}}) {
		t.Fatalf("DNS ports %+v", got)
	}
}

func TestEmptyRulesAreNoL7Rule(t *testing.T) {
	for _, rules := range []string{"{}", "{dns: []}"} {
		doc := dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '53', protocol: UDP}], rules: " + rules + "}]\n"
		pols, err := Parse("x.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("rules: %s: %v", rules, err)
		}
		if pr := pols[0].Rules[0].Egress.Allow[0]; pr.HasDNS() || pr.DNS != nil {
			t.Fatalf("rules: %s gave DNS rules %+v", rules, pr.DNS)
		}
	}
}

func TestToFQDNsParseAsPeers(t *testing.T) {
	doc := dnsHead + `  egress:
  - toFQDNs: [{matchName: api.github.com}, {matchPattern: "**.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`
	pols, err := Parse("x.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pr := pols[0].Rules[0].Egress.Allow[0]
	if len(pr.Peers) != 2 || pr.Peers[0].FQDN == nil || pr.Peers[1].FQDN.Selector().MatchPattern != "**.example.com" {
		t.Fatalf("peers %+v", pr.Peers)
	}
	if got := FQDNMatchers(pols); len(got) != 2 {
		t.Fatalf("FQDNMatchers: %d", len(got))
	}
}

func TestDNSPolicyErrorsCarryPositions(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"DNS rules on ingress", dnsHead + "  ingress:\n  - toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchName: a.com}]}}]\n",
			`x.yaml:7:47: ingress rule: rules.dns: DNS rules are not allowed on ingress`},
		{"DNS rules in egressDeny", dnsHead + "  egressDeny:\n  - toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchName: a.com}]}}]\n",
			`x.yaml:7:47: egressDeny rule: L7 rules cannot deny`},
		{"DNS rules on port 0", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '0', protocol: UDP}], rules: {dns: [{matchName: a.com}]}}]\n",
			`rules.dns: every port needs a port number`},
		{"DNS rules on a port range", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '53', endPort: 54, protocol: UDP}], rules: {dns: [{matchName: a.com}]}}]\n",
			`rules.dns: DNS rules do not support port ranges`},
		{"DNS rules on SCTP", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '53', protocol: SCTP}], rules: {dns: [{matchName: a.com}]}}]\n",
			`rules.dns: DNS runs over UDP or TCP`},
		{"a name with bad characters", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchName: 'a b.com'}]}}]\n",
			`x.yaml:7:53: rules.dns item: matchName "a b.com": only`},
		{"both matchName and matchPattern", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchName: a.com, matchPattern: '*.com'}]}}]\n",
			`only one of matchName and matchPattern may be set`},
		{"an empty DNS selector", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '53'}], rules: {dns: [{}]}}]\n",
			`rules.dns item: dns selector: one of matchName and matchPattern must be set`},
		{"Kafka rules stay refused", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '80'}], rules: {kafka: [{}]}}]\n",
			`rules: "kafka" is not enforced`},
		{"DNS and HTTP rules in one item", dnsHead + "  egress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{}], dns: [{matchName: a.com}]}}]\n",
			`rules: one kind of L7 rules per toPorts item (as in Cilium): http and dns`},
		{"toFQDNs with a bad pattern", dnsHead + "  egress:\n  - toFQDNs: [{matchPattern: 'a?.com'}]\n",
			`x.yaml:7:15: toFQDNs item: matchPattern "a?.com": only`},
		{"toFQDNs beside another L3 selector", dnsHead + "  egress:\n  - toFQDNs: [{matchName: a.com}]\n    toEntities: [world]\n",
			`combining toEndpoints, toCIDR/toCIDRSet, toEntities or toFQDNs in one rule is not supported`},
		{"toFQDNs in an ingress rule is unknown", dnsHead + "  ingress:\n  - toFQDNs: [{matchName: a.com}]\n",
			`x.yaml:7:5: unknown field "toFQDNs" in ingress rule`},
		{"DNS rules in a host policy", "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: h}\nspec:\n  nodeSelector: {}\n  egress:\n  - toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchName: a.com}]}}]\n",
			`x.yaml:5:3: spec: rules.dns and toFQDNs is not enforced`},
		{"toFQDNs in a host policy", "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: h}\nspec:\n  nodeSelector: {}\n  egress:\n  - toFQDNs: [{matchName: a.com}]\n",
			`in a host policy (nodeSelector)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pols, err := Parse("x.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; policies %+v", pols)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
