package compile

import (
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

var (
	dnsNames     = []string{"api.example.com", "www.example.com", "a.b.example.com", "example.com", "cdn.x.net", "other.org"}
	dnsSelectors = []string{"{matchName: api.example.com}", "{matchPattern: '*.example.com'}", "{matchPattern: '**.example.com'}",
		"{matchPattern: '*'}", "{matchPattern: '*example.com'}", "{matchPattern: 'cdn.*.net'}", "{matchName: other.org.}"}
)

func randDNSSelectors(r *rand.Rand) string {
	var s []string
	for i := 0; i < 1+r.Intn(2); i++ {
		s = append(s, pick(r, dnsSelectors...))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// randDNSEgress is one egress allow of the DNS kinds: a toFQDNs rule, a
// rules.dns rule to some servers, or an L3/L4 allow of a DNS port.
func randDNSEgress(r *rand.Rand) string {
	peer := pick(r, "toEndpoints: ["+randSelector(r, false)+"]", "toEntities: [world]", "toEntities: [all]",
		"toCIDR: [8.8.8.8/32]", "toCIDR: [10.0.0.0/8]", "")
	switch r.Intn(4) {
	case 0:
		ports := ""
		if r.Intn(3) > 0 {
			ports = ", toPorts: [{ports: [{port: '" + pick(r, "443", "80") + "', protocol: TCP}]}]"
		}
		return "{toFQDNs: " + randDNSSelectors(r) + ports + "}"
	case 1, 2:
		items := "{ports: [{port: '53', protocol: " + pick(r, "ANY", "UDP", "TCP") + "}], rules: {dns: " + randDNSSelectors(r) + "}}"
		if r.Intn(3) == 0 {
			items += ", {ports: [{port: '" + pick(r, "53", "5353") + "', protocol: TCP}]}"
		}
		if r.Intn(4) == 0 {
			items += ", {ports: [{port: '5353', protocol: UDP}], rules: {dns: " + randDNSSelectors(r) + "}}"
		}
		if peer == "" {
			return "{toPorts: [" + items + "]}"
		}
		return "{" + peer + ", toPorts: [" + items + "]}"
	default:
		if peer == "" {
			peer = "toEntities: [cluster]"
		}
		if r.Intn(3) == 0 {
			return "{" + peer + "}"
		}
		return "{" + peer + ", toPorts: [{ports: [{port: '53', protocol: " + pick(r, "UDP", "TCP", "ANY") + "}]}]}"
	}
}

func randDNSPolicy(r *rand.Rand, i int) string {
	spec := "endpointSelector: " + randSelector(r, false)
	var rules []string
	for j := 0; j < 1+r.Intn(3); j++ {
		rules = append(rules, randDNSEgress(r))
	}
	spec += ", egress: [" + strings.Join(rules, ", ") + "]"
	if r.Intn(5) == 0 {
		spec += ", egressDeny: [{toCIDR: [8.8.8.8/32], toPorts: [{ports: [{port: '53', protocol: UDP}]}]}]"
	}
	if r.Intn(5) == 0 {
		spec += ", enableDefaultDeny: {egress: false}"
	}
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: d%d, namespace: %s}\nspec: {%s}\n",
		i, pick(r, "ns1", "ns2"), spec)
}

// checkDNSAgainstEvaluate compiles random policies with toFQDNs and
// rules.dns against random DNS-learned names, and holds the kernel's
// lookup against policy.Evaluate and the DNS proxy's table against
// policy.EvaluateDNS.
func checkDNSAgainstEvaluate(t *testing.T, seed int64, probes int, seen map[string]int) {
	r := rand.New(rand.NewSource(seed))
	w := newWorld(r)
	var docs []string
	for i := 0; i < 1+r.Intn(3); i++ {
		docs = append(docs, randDNSPolicy(r, i))
	}
	if r.Intn(2) == 0 {
		docs = append(docs, randPolicy(r, 9))
	}
	src := strings.Join(docs, "---\n")
	pols, err := policy.Parse("rand.yaml", []byte(src))
	if err != nil {
		t.Fatalf("seed %d: generated policy does not parse: %v\n%s", seed, err, src)
	}
	names := map[netip.Addr][]string{}
	for _, ip := range append(slices.Clone(w.worldIPs), w.pods[0].IPs[0]) {
		if r.Intn(4) == 0 {
			continue
		}
		for _, n := range dnsNames {
			if r.Intn(3) == 0 {
				names[ip] = append(names[ip], n)
			}
		}
	}
	c, err := Compile(Input{Policies: pols, Endpoints: w.pods, Identities: w.ids, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	tab := dnsmatch.NewTable()
	if err := tab.Set(c.DNS); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	labelsOf := map[uint32][]string{}
	for _, i := range c.Identities {
		labelsOf[uint32(i.ID)] = i.Labels
	}
	redirected := map[DNSRedirect]bool{}
	for _, rd := range c.DNSRedirects {
		redirected[rd] = true
	}
	for n := 0; n < probes; n++ {
		local := w.pods[r.Intn(len(w.pods))]
		pe := policy.Endpoint{ID: local.ID, Namespace: local.Namespace, Labels: local.Labels}
		var remote policy.Peer
		if r.Intn(3) == 0 {
			p := w.pods[r.Intn(len(w.pods))]
			remote = policy.Peer{Identity: p.Identity, Labels: labelsOf[p.Identity], IP: p.IPs[0], Names: names[p.IPs[0]]}
		} else {
			ip := w.worldIPs[r.Intn(len(w.worldIPs))]
			remote = policy.Peer{Identity: uint32(identity.World), Labels: []string{"reserved:world"}, IP: ip, Names: names[ip]}
		}
		remoteID := c.IdentityOf(remote.IP)
		proto := pick[uint8](r, 6, 17)
		port := pick[uint16](r, 53, 53, 5353, 443, 80)
		want := policy.Evaluate(pols, pe, remote, policy.Egress, proto, port, 0)
		got := c.Decide(local.ID, remoteID, policy.Egress, proto, port)
		seen["l4 "+want.Verdict.String()]++
		if len(remote.Names) > 0 && want.Verdict == policy.Allowed && port >= 80 && port <= 443 {
			seen["fqdn allowed"]++
		}
		if got.Verdict != want.Verdict || !reflect.DeepEqual(got.Policies, want.Policies) && len(got.Policies)+len(want.Policies) > 0 {
			t.Fatalf("seed %d probe %d: %v → %v (id %d, names %v) proto %d port %d:\ncompiled %v %v\nevaluate %v %v\n%s",
				seed, n, local.Labels, remote.IP, remoteID, remote.Names, proto, port,
				got.Verdict, got.Policies, want.Verdict, want.Policies, src)
		}
		name := pick(r, append(slices.Clone(dnsNames), "API.Example.com.", "weird_name.x")...)
		wantDNS := policy.EvaluateDNS(pols, pe, remote, proto, port, name)
		if redirected[DNSRedirect{local.ID, proto, port}] != wantDNS.Redirected {
			t.Fatalf("seed %d probe %d: endpoint %d %d/%d redirected %v, want %v\n%s", seed, n, local.ID, port, proto,
				!wantDNS.Redirected, wantDNS.Redirected, src)
		}
		if !wantDNS.Redirected || !want.Verdict.Forwarded() {
			continue // the proxy never sees it
		}
		v := tab.Check(dnsmatch.Query{Endpoint: local.ID, Server: netip.AddrPortFrom(remote.IP, port), Protocol: proto, Name: name})
		seen[fmt.Sprintf("dns allowed=%v", v.Allowed)]++
		if v.Allowed != wantDNS.Allowed || !slices.Equal(refIDs(v.Policies), wantDNS.Policies) {
			t.Fatalf("seed %d probe %d: %v asks %v (id %d) %d/%d for %q:\ntable    %+v\nevaluate %+v\n%s", seed, n, local.Labels,
				remote.IP, remoteID, port, proto, name, v, wantDNS, src)
		}
	}
}

// refIDs are the policy IDs of refs.
func refIDs(refs []api.PolicyRef) []policy.ID {
	var out []policy.ID
	for _, r := range refs {
		out = append(out, policy.ID{Kind: policy.Kind(r.Kind), Namespace: r.Namespace, Name: r.Name})
	}
	return out
}

func TestCompiledDNSAgreesWithEvaluate(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	seen := map[string]int{}
	for s := 0; s < seeds; s++ {
		checkDNSAgainstEvaluate(t, int64(s), 200, seen)
	}
	for _, k := range []string{"l4 allowed", "l4 denied", "l4 not-selected", "fqdn allowed", "dns allowed=true", "dns allowed=false"} {
		if seen[k] < seeds {
			t.Errorf("%s seen only %d times: %v", k, seen[k], seen)
		}
	}
}

func FuzzCompileDNS(f *testing.F) {
	for s := int64(2000); s < 2010; s++ {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		checkDNSAgainstEvaluate(t, seed, 100, map[string]int{})
	})
}

func TestToFQDNsAddressesGetCIDRIdentitiesOutsideTheCluster(t *testing.T) {
	pols, err := policy.Parse("f.yaml", []byte(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	pod := netip.MustParseAddr("198.18.0.2")
	ext, other := netip.MustParseAddr("198.19.0.7"), netip.MustParseAddr("198.19.0.8")
	c, err := Compile(Input{Policies: pols,
		Endpoints: []Endpoint{{ID: 5, Identity: 1000, Namespace: "default", Labels: []string{"k8s:app=client"}, IPs: []netip.Addr{pod}}},
		Names:     map[netip.Addr][]string{ext: {"api.example.com"}, other: {"other.org"}, pod: {"www.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	extID := c.IdentityOf(ext)
	if extID <= uint32(identity.LocalScope) {
		t.Fatalf("the answer's address has identity %d, want a local CIDR identity", extID)
	}
	if d := c.Decide(5, extID, policy.Egress, 6, 443); d.Verdict != policy.Allowed || !slices.Equal(d.Refs(), []string{"default/fqdn"}) {
		t.Fatalf("to the name's address: %+v", d)
	}
	if id := c.IdentityOf(other); id != uint32(identity.World) {
		t.Fatalf("an address of a name no selector selects has identity %d, want world", id)
	}
	if id := c.IdentityOf(pod); id != 1000 {
		t.Fatalf("a pod's address named by DNS has identity %d, want the pod's", id)
	}
	sel := dnsmatch.Selector{MatchPattern: "*.example.com"}
	if !c.FQDNSelects(ext, sel) || !c.FQDNSelects(pod, sel) || c.FQDNSelects(other, sel) {
		t.Fatalf("FQDNAddrs %v", c.FQDNAddrs)
	}
}
