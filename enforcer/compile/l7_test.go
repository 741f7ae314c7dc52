package compile

import (
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// randHTTPRules is a rules.http list from a small pool, so that rules of
// several policies overlap.
func randHTTPRules(r *rand.Rand) string {
	var rules []string
	for i := 0; i < 1+r.Intn(2); i++ {
		rules = append(rules, pick(r, "{method: GET, path: '/public/.*'}", "{method: 'POST|PUT'}", "{path: /admin}",
			"{host: 'a\\.example'}", "{headers: ['X-Env: prod']}", "{headerMatches: [{name: X-Trace}]}", "{}"))
	}
	return "[" + strings.Join(rules, ", ") + "]"
}

// randL7Policy is a CNP or CCNP with allows on TCP 80 and 8080, some with
// L7 rules, and sometimes an L3/L4 allow or a deny on the same port.
func randL7Policy(r *rand.Rand, i int) string {
	kind, meta := "CiliumNetworkPolicy", fmt.Sprintf("{name: p%d, namespace: %s}", i, pick(r, "ns1", "ns2"))
	if r.Intn(3) == 0 {
		kind, meta = "CiliumClusterwideNetworkPolicy", fmt.Sprintf("{name: p%d}", i)
	}
	spec := "endpointSelector: " + randSelector(r, false)
	sections := 0
	for _, d := range []struct {
		key, from string
	}{{"ingress", "from"}, {"egress", "to"}} {
		if r.Intn(3) == 0 {
			continue
		}
		var rules []string
		for j := 0; j < 1+r.Intn(3); j++ {
			var peer string
			switch r.Intn(4) {
			case 0:
				peer = d.from + "Endpoints: [" + randSelector(r, false) + "], "
			case 1:
				peer = d.from + "Entities: [" + pick(r, "world", "cluster", "host", "all") + "], "
			case 2:
				peer = d.from + "CIDR: [" + randCIDR(r) + "], "
			}
			port := pick(r, "80", "8080")
			switch r.Intn(5) {
			case 0: // L3/L4 only
				rules = append(rules, "{"+peer+"toPorts: [{ports: [{port: '"+port+"', protocol: TCP}]}]}")
			case 1: // every port
				if peer != "" {
					rules = append(rules, "{"+strings.TrimSuffix(peer, ", ")+"}")
				}
			default:
				rules = append(rules, "{"+peer+"toPorts: [{ports: [{port: '"+port+"', protocol: TCP}], rules: {http: "+randHTTPRules(r)+"}}]}")
			}
		}
		spec += ", " + d.key + ": [" + strings.Join(rules, ", ") + "]"
		sections += len(rules)
		if r.Intn(2) == 0 {
			spec += ", " + d.key + "Deny: [{" + d.from + "Endpoints: [" + randSelector(r, false) + "], toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]"
			sections++
		}
	}
	if sections == 0 { // Cilium refuses a rule without any
		spec += ", egressDeny: [{}]"
	}
	if r.Intn(6) == 0 {
		spec += ", enableDefaultDeny: {ingress: false, egress: false}"
	}
	return "apiVersion: cilium.io/v2\nkind: " + kind + "\nmetadata: " + meta + "\nspec: {" + spec + "}\n"
}

var l7Requests = []policy.HTTPRequest{
	{Method: "GET", Path: "/public/a", Host: "a.example"},
	{Method: "GET", Path: "/public/a?x=1", Host: "b.example", Headers: map[string]string{"x-env": "prod"}},
	{Method: "get", Path: "/public/a", Host: "a.example"},
	{Method: "POST", Path: "/admin", Host: "b.example", Headers: map[string]string{"x-trace": "1"}},
	{Method: "DELETE", Path: "/admin", Host: "a.example:80"},
	{Method: "PUT", Path: "/public", Host: "b.example", Headers: map[string]string{"x-env": "prod,dev"}},
}

// checkL7AgainstEvaluate compiles random policies with L7 rules and holds
// the L7 part (with the kernel's verdict first) against
// policy.EvaluateHTTP for random requests.
func checkL7AgainstEvaluate(t *testing.T, seed int64, requests int, seen map[policy.Verdict]int) {
	r := rand.New(rand.NewSource(seed))
	w := newWorld(r)
	var docs []string
	for i := 0; i < 1+r.Intn(3); i++ {
		docs = append(docs, randL7Policy(r, i))
	}
	src := strings.Join(docs, "---\n")
	pols, err := policy.Parse("rand.yaml", []byte(src))
	if err != nil {
		t.Fatalf("seed %d: generated policy does not parse: %v\n%s", seed, err, src)
	}
	hostIP := netip.MustParseAddr("192.0.2.1")
	c, err := Compile(Input{Policies: pols, Endpoints: w.pods, Identities: w.ids,
		IPCache: []IPEntry{{Prefix: netip.PrefixFrom(hostIP, 32), Identity: uint32(identity.Host)}}})
	if err != nil {
		t.Fatal(err)
	}
	labelsOf := map[uint32][]string{}
	for _, i := range c.Identities {
		labelsOf[uint32(i.ID)] = i.Labels
	}
	for n := 0; n < requests; n++ {
		local := w.pods[r.Intn(len(w.pods))]
		var remote policy.Peer
		switch r.Intn(3) {
		case 0:
			p := w.pods[r.Intn(len(w.pods))]
			remote = policy.Peer{Identity: p.Identity, Labels: labelsOf[p.Identity], IP: p.IPs[0]}
		case 1:
			remote = policy.Peer{Identity: uint32(identity.Host), Labels: []string{"reserved:host"}, IP: hostIP}
		default:
			remote = policy.Peer{Identity: uint32(identity.World), Labels: []string{"reserved:world"}, IP: w.worldIPs[r.Intn(len(w.worldIPs))]}
		}
		dir := pick(r, policy.Ingress, policy.Egress)
		port := pick[uint16](r, 80, 8080, 443)
		req := l7Requests[r.Intn(len(l7Requests))]
		lp := policy.Endpoint{ID: local.ID, Namespace: local.Namespace, Labels: local.Labels}
		want := policy.EvaluateHTTP(pols, lp, remote, dir, port, req)
		seen[want.Verdict]++

		kernel := c.Decide(local.ID, c.IdentityOf(remote.IP), dir, 6, port)
		got := kernel
		if kernel.Verdict.Forwarded() {
			got = c.decideRequest(local.ID, dir, port, remote.IP, req, kernel)
		}
		if (got.Verdict == policy.DeniedL7) != (want.Verdict == policy.DeniedL7) || got.Verdict.Forwarded() != want.Verdict.Forwarded() ||
			got.Verdict == policy.DeniedL7 && !reflect.DeepEqual(got.Policies, want.Policies) {
			t.Fatalf("seed %d request %d: %s %v → %v (%v) port %d %+v:\ncompiled %v %v\nevaluate %v %v\n%s",
				seed, n, dir, local.Labels, remote.Labels, remote.IP, port, req, got.Verdict, got.Policies, want.Verdict, want.Policies, src)
		}
		if policy.HasL7(pols, lp, dir, port) != slices.ContainsFunc(c.L7, func(l L7Port) bool {
			return l.Endpoint == local.ID && l.Direction == dir && l.Port == port
		}) {
			t.Fatalf("seed %d: endpoint %d %s port %d: HasL7 and the compiled ports disagree\n%s", seed, local.ID, dir, port, src)
		}
	}
}

// decideRequest is what the L7 proxy does with a request the kernel let
// through: the group of the peer's address decides.
func (c *Compiled) decideRequest(ep uint32, dir policy.Direction, port uint16, peer netip.Addr, req policy.HTTPRequest, kernel policy.Decision) policy.Decision {
	for _, lp := range c.L7 {
		if lp.Endpoint != ep || lp.Direction != dir || lp.Port != port {
			continue
		}
		n := 0
		var group *L7Group
		for i := range lp.Groups {
			if lp.Groups[i].Peers.Contains(peer) {
				group = &lp.Groups[i]
				n++
			}
		}
		if n != 1 {
			panic(fmt.Sprintf("peer %v is in %d groups of endpoint %d %s port %d", peer, n, ep, dir, port))
		}
		if group.AllowAll {
			return kernel
		}
		for i := range group.HTTP {
			if group.HTTP[i].Matches(req) {
				return policy.Decision{Verdict: policy.Allowed}
			}
		}
		return policy.Decision{Verdict: policy.DeniedL7, Policies: group.Policies}
	}
	return kernel
}

func TestCompiledL7AgreesWithEvaluateHTTP(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	seen := map[policy.Verdict]int{}
	for s := 0; s < seeds; s++ {
		checkL7AgainstEvaluate(t, int64(s), 200, seen)
	}
	for _, v := range []policy.Verdict{policy.NotSelected, policy.Allowed, policy.Denied, policy.DeniedByDeny, policy.DeniedL7} {
		if seen[v] < seeds*200/100 {
			t.Errorf("verdict %v seen only %d times: %v", v, seen[v], seen)
		}
	}
}

func TestL7GroupsOfAnExample(t *testing.T) {
	const doc = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET, path: '/public/.*'}]}}]
  - fromCIDR: [10.0.0.0/8]
    toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: POST}]}}]
  - fromCIDR: [10.1.0.0/16]
    toPorts: [{ports: [{port: '80', protocol: TCP}]}]
`
	pols, err := policy.Parse("web.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	alloc, _ := identity.NewAllocator("")
	idA, _ := alloc.Allocate(identity.NewLabels("k8s:app=a", "k8s:"+policy.NamespaceLabel+"=ns1"))
	idB, _ := alloc.Allocate(identity.NewLabels("k8s:app=b", "k8s:"+policy.NamespaceLabel+"=ns1"))
	a := netip.MustParseAddr("198.18.0.2")
	b := netip.MustParseAddr("198.18.0.3")
	c, err := Compile(Input{Policies: pols, Identities: alloc.List(), Endpoints: []Endpoint{
		{ID: 7, Identity: uint32(idA), Namespace: "ns1", Labels: []string{"k8s:app=a"}, IPs: []netip.Addr{a}},
		{ID: 8, Identity: uint32(idB), Namespace: "ns1", Labels: []string{"k8s:app=b"}, IPs: []netip.Addr{b}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	web := policy.ID{Kind: policy.KindCNP, Namespace: "ns1", Name: "web"}
	if len(c.L7) != 1 || c.L7[0].Endpoint != 7 || c.L7[0].Direction != policy.Ingress || c.L7[0].Port != 80 {
		t.Fatalf("L7 ports %+v, want endpoint 7's ingress port 80", c.L7)
	}
	if _, ok := c.L7[0].Revisions[web]; !ok {
		t.Fatalf("revisions %v lack the policy's", c.L7[0].Revisions)
	}
	for _, tc := range []struct {
		peer     string
		allowAll bool
		rules    int
		policies []policy.ID
	}{
		{"198.18.0.3", false, 1, []policy.ID{web}}, // b: GET /public/.*
		{"10.2.0.1", false, 1, []policy.ID{web}},   // 10/8: POST
		{"10.1.0.1", true, 0, nil},                 // 10.1/16: L3/L4 only, every request
		{"198.18.0.2", false, 0, []policy.ID{web}}, // a itself: not allowed
		{"8.8.8.8", false, 0, []policy.ID{web}},    // world: not allowed
	} {
		var found []L7Group
		for _, g := range c.L7[0].Groups {
			if g.Peers.Contains(netip.MustParseAddr(tc.peer)) {
				found = append(found, g)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%s is in %d groups", tc.peer, len(found))
		}
		g := found[0]
		if g.AllowAll != tc.allowAll || len(g.HTTP) != tc.rules || !reflect.DeepEqual(g.Policies, tc.policies) {
			t.Errorf("%s: group %+v, want allowAll %v, %d rules, policies %v", tc.peer, g, tc.allowAll, tc.rules, tc.policies)
		}
	}
}
