package policy

import (
	"net/netip"
	"reflect"
	"testing"
)

var (
	dnsClient   = Endpoint{ID: 1, Namespace: "default", Labels: []string{"k8s:app=client"}}
	kubeDNSPeer = Peer{Identity: 300, IP: netip.MustParseAddr("198.18.0.10"),
		Labels: []string{"k8s:k8s-app=kube-dns", "k8s:" + NamespaceLabel + "=kube-system"}}
	worldDNS = Peer{Identity: 2, IP: netip.MustParseAddr("198.19.0.53"), Labels: []string{"reserved:world"}}
)

func mustParseAll(t *testing.T, docs ...string) []*Policy {
	t.Helper()
	var all []*Policy
	for _, d := range docs {
		all = append(all, mustParse(t, d)...)
	}
	return all
}

// cnpIDs are the IDs of CNPs in default.
func cnpIDs(names ...string) []ID {
	var out []ID
	for _, n := range names {
		out = append(out, ID{Kind: KindCNP, Namespace: "default", Name: n})
	}
	return out
}

func cnpDoc(name, spec string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " + name + ", namespace: default}\nspec:\n  endpointSelector: {matchLabels: {app: client}}\n" + spec
}

func TestEvaluateDNS(t *testing.T) {
	withDNS := cnpDoc("dns", kubeDNS)
	l4Only := cnpDoc("l4", "  egress:\n  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]\n    toPorts: [{ports: [{port: '53', protocol: UDP}]}]\n")
	open := cnpDoc("open", "  enableDefaultDeny: {egress: false}\n"+kubeDNS)
	anyName := cnpDoc("any", "  egress:\n  - toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]\n")
	for _, tc := range []struct {
		name   string
		docs   []string
		server Peer
		proto  uint8
		port   uint16
		query  string
		want   DNSDecision
	}{
		{"a name under the pattern passes", []string{withDNS}, kubeDNSPeer, 17, 53, "www.example.com.",
			DNSDecision{Redirected: true, Allowed: true, Policies: cnpIDs("dns")}},
		{"a matchName passes in any case, over TCP too", []string{withDNS}, kubeDNSPeer, 6, 53, "api.EXAMPLE.org",
			DNSDecision{Redirected: true, Allowed: true, Policies: cnpIDs("dns")}},
		{"another name is denied, naming the policy", []string{withDNS}, kubeDNSPeer, 17, 53, "evil.com.",
			DNSDecision{Redirected: true, Policies: cnpIDs("dns")}},
		{"a star is one label deep", []string{withDNS}, kubeDNSPeer, 17, 53, "a.b.example.com.",
			DNSDecision{Redirected: true, Policies: cnpIDs("dns")}},
		{"the bare domain is not under *.example.com", []string{withDNS}, kubeDNSPeer, 17, 53, "example.com.",
			DNSDecision{Redirected: true, Policies: cnpIDs("dns")}},
		{"another port is not redirected", []string{withDNS}, kubeDNSPeer, 17, 5353, "evil.com.",
			DNSDecision{Allowed: true}},
		{"a server no rule allows: denied in default deny", []string{withDNS}, worldDNS, 17, 53, "www.example.com.",
			DNSDecision{Redirected: true, Policies: cnpIDs("dns")}},
		{"an L3/L4 allow of the same peer and port lifts the DNS rules", []string{withDNS, l4Only}, kubeDNSPeer, 17, 53, "evil.com.",
			DNSDecision{Redirected: true, Allowed: true, Policies: cnpIDs("l4")}},
		{"but not on another protocol", []string{withDNS, l4Only}, kubeDNSPeer, 6, 53, "evil.com.",
			DNSDecision{Redirected: true, Policies: cnpIDs("dns")}},
		{"outside egress default deny a server no rule covers passes", []string{open}, worldDNS, 17, 53, "evil.com.",
			DNSDecision{Redirected: true, Allowed: true}},
		{"outside egress default deny the rules still judge their servers", []string{open}, kubeDNSPeer, 17, 53, "evil.com.",
			DNSDecision{Redirected: true, Policies: cnpIDs("open")}},
		{"a lone star passes every name", []string{anyName}, worldDNS, 17, 53, "no_such..name",
			DNSDecision{Redirected: true, Allowed: true, Policies: cnpIDs("any")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EvaluateDNS(mustParseAll(t, tc.docs...), dnsClient, tc.server, tc.proto, tc.port, tc.query)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestEvaluateToFQDNsSelectsWorldAddressesByName(t *testing.T) {
	pols := mustParse(t, cnpDoc("fqdn", "  egress:\n  - toFQDNs: [{matchName: api.example.com}, {matchPattern: '*.cdn.example.net'}]\n    toPorts: [{ports: [{port: '443', protocol: TCP}]}]\n"))
	fqdnPeer := func(ip string, names ...string) Peer {
		return Peer{Identity: 16777300, IP: netip.MustParseAddr(ip), Labels: []string{"cidr:" + ip + "/32", "reserved:world"}, Names: names}
	}
	for _, tc := range []struct {
		name   string
		remote Peer
		port   uint16
		want   Verdict
	}{
		{"an address of the name", fqdnPeer("198.18.5.5", "api.example.com"), 443, Allowed},
		{"an address of a name under the pattern", fqdnPeer("198.18.5.6", "other.org", "a.cdn.example.net"), 443, Allowed},
		{"on another port", fqdnPeer("198.18.5.5", "api.example.com"), 80, Denied},
		{"an address of another name", fqdnPeer("198.18.5.7", "other.org"), 443, Denied},
		{"an address no answer gave", fqdnPeer("198.18.5.8"), 443, Denied},
		{"a pod's address, whatever its names", Peer{Identity: 300, IP: netip.MustParseAddr("198.18.0.9"),
			Labels: []string{"k8s:app=server"}, Names: []string{"api.example.com"}}, 443, Denied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Evaluate(pols, dnsClient, tc.remote, Egress, 6, tc.port, 0); got.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", got.Verdict, tc.want)
			}
		})
	}
}
