package compile

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/policy"
)

// admitInput is a node of two endpoints, client (id 10, 10.0.0.1) and dns
// (id 11, 10.0.0.53, k8s-app=kube-dns), under the policies' rules, with
// names.
func admitInput(t *testing.T, rules string, names map[netip.Addr][]string) Input {
	t.Helper()
	var docs strings.Builder
	for i, r := range strings.Split(rules, "---\n") {
		fmt.Fprintf(&docs, "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p%d, namespace: default}\nspec:\n%s", i, r)
	}
	parsed, _, err := policy.ParseDocuments("admit.yaml", []byte(docs.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, docs.String())
	}
	in := Input{Names: names, Endpoints: []Endpoint{
		{ID: 10, Identity: 5000, Namespace: "default", Labels: []string{"k8s:app=client"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{ID: 11, Identity: 5001, Namespace: "default", Labels: []string{"k8s:k8s-app=kube-dns"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.53")}},
	}}
	for _, d := range parsed {
		in.Policies = append(in.Policies, d.Policy)
	}
	return in
}

const (
	admitFQDN = `  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`
	admitDNSToEndpoint = `  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]
`
)

// Admit either gives what Compile gives with the names added, or says why
// only Compile can (ErrRecompile): each refusal's case, and cases it must
// not refuse.
func TestAdmitEqualsCompileOrRefusesWithAReason(t *testing.T) {
	known := netip.MustParseAddr("198.51.100.1")
	base := map[netip.Addr][]string{known: {"known.example.com"}}
	for _, tc := range []struct {
		name   string
		rules  string
		answer map[netip.Addr][]string
		refuse string // a part of the error; "" admits
	}{
		{"a new address of a toFQDNs name", admitFQDN + "---\n" + admitDNSToEndpoint,
			map[netip.Addr][]string{netip.MustParseAddr("198.51.100.2"): {"new.example.com"}}, ""},
		{"an IPv6 address in a toCIDR prefix and of a name", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: ["fd00:5::/64"]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`, map[netip.Addr][]string{netip.MustParseAddr("fd00:5::7"): {"v6.example.com"}}, ""},
		{"toEntities world and all", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
    toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
  - toEntities: [all]
    toPorts: [{ports: [{port: "123", protocol: UDP}]}]
`, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.3"): {"w.example.com"}}, ""},
		{"a local endpoint's address: no identity", admitFQDN,
			map[netip.Addr][]string{netip.MustParseAddr("10.0.0.53"): {"dns.example.com"}}, ""},
		{"a name no selector selects", admitFQDN,
			map[netip.Addr][]string{netip.MustParseAddr("198.51.100.4"): {"other.org"}}, ""},
		{"the known address again", admitFQDN, base, ""},
		{"L7 rules", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
`, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.5"): {"a.example.com"}}, "L7 rules"},
		{"a deny that covers the address", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egressDeny:
  - toCIDR: [198.51.100.0/24]
`, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.6"): {"a.example.com"}}, "deny rule"},
		{"a DNS rule to the world", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
    toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]
`, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.7"): {"a.example.com"}}, ""},
		{"a toFQDNs allow of every port beside a DNS rule", `  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
---
` + admitDNSToEndpoint, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.8"): {"a.example.com"}}, ""},
		{"an allow to a CIDR beside a DNS rule: a DNS rule it did not make before", `  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: [203.0.113.0/24]
---
` + admitFQDN + "---\n" + admitDNSToEndpoint, map[netip.Addr][]string{netip.MustParseAddr("203.0.113.8"): {"a.example.com"}}, ""},
		{"a toFQDNs allow of every port whose names had no address: its first DNS rule", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchName: "b.other.org"}]
---
` + admitDNSToEndpoint, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.11"): {"b.other.org"}}, ""},
		{"the known address under another selector", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchName: "b.other.org"}]
`, map[netip.Addr][]string{known: {"b.other.org", "known.example.com"}}, "selected already"},
		{"an address with a toCIDR /32's identity", admitFQDN + `---
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: [198.51.100.9/32]
    toPorts: [{ports: [{port: "25", protocol: TCP}]}]
`, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.9"): {"a.example.com"}}, "has an identity"},
		{"ingress from a CIDR, and another endpoint's toFQDNs", `  endpointSelector: {matchLabels: {k8s-app: kube-dns}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
---
  endpointSelector: {matchLabels: {app: client}}
  ingress:
  - fromCIDR: [198.51.100.0/24]
`, map[netip.Addr][]string{netip.MustParseAddr("198.51.100.10"): {"a.example.com"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(admitInput(t, tc.rules, maps.Clone(base)))
			if err != nil {
				t.Fatal(err)
			}
			next, delta, err := c.Admit(tc.answer)
			if tc.refuse != "" {
				if !errors.Is(err, ErrRecompile) || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("Admit: %v, want ErrRecompile saying %q", err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			all := maps.Clone(base)
			maps.Copy(all, tc.answer)
			full, err := Compile(admitInput(t, tc.rules, all))
			if err != nil {
				t.Fatal(err)
			}
			checkSameCompiled(t, next, full)
			for k := range delta.Policy {
				if _, ok := c.Policy[k]; ok {
					t.Errorf("the delta's entry %+v is the base's already", k)
				}
			}
			if len(next.Policy) != len(c.Policy)+len(delta.Policy) || len(next.IPCache) != len(c.IPCache)+len(delta.IPCache) {
				t.Errorf("the result is not the base and the delta: %d+%d entries, %d in the result", len(c.Policy), len(delta.Policy), len(next.Policy))
			}
		})
	}
}

// checkSameCompiled holds got against want as the kernel and the DNS
// proxy see them (policy sets by their names: their numbers are Compile's
// order).
func checkSameCompiled(t *testing.T, got, want *Compiled) {
	t.Helper()
	names := func(c *Compiled) map[Key]string {
		out := map[Key]string{}
		for k, v := range c.Policy {
			out[k] = fmt.Sprint(v.Action, c.PolicySets[v.PolicySet])
		}
		return out
	}
	if g, w := names(got), names(want); !maps.Equal(g, w) {
		t.Errorf("policy entries\n%v\nCompile's\n%v", g, w)
	}
	if !maps.Equal(got.IPCache, want.IPCache) || !maps.Equal(got.Flags, want.Flags) || !maps.Equal(got.Enforce, want.Enforce) ||
		!maps.Equal(got.LocalIngress, want.LocalIngress) {
		t.Errorf("ipcache, flags, enforcement or local ingress differ from Compile's")
	}
	if fmt.Sprint(got.Identities) != fmt.Sprint(want.Identities) || fmt.Sprint(got.FQDNAddrs) != fmt.Sprint(want.FQDNAddrs) {
		t.Errorf("identities or FQDN addresses differ from Compile's")
	}
	if fmt.Sprint(got.DNS.ByEndpoint) != fmt.Sprint(want.DNS.ByEndpoint) || fmt.Sprint(got.DNSRedirects) != fmt.Sprint(want.DNSRedirects) {
		t.Errorf("DNS rules differ from Compile's")
	}
	for p := range want.IPCache {
		if a := p.Addr(); got.DNS.IdentityOf != nil && got.DNS.IdentityOf(a) != want.IdentityOf(a) {
			t.Errorf("the DNS rules see %s as %d, Compile's %d", a, got.DNS.IdentityOf(a), want.IdentityOf(a))
		}
	}
}
