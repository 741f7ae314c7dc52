package dnsmatch

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

func TestTableChecksQueriesAgainstTheEndpointsRules(t *testing.T) {
	server := netip.MustParseAddrPort("198.18.0.53:53")
	other := netip.MustParseAddrPort("198.18.0.54:53")
	tab := NewTable()
	err := tab.Replace(map[uint32][]Rule{
		1: {
			{Policy: testRef("default/web"), Port: 53, Names: []Selector{{MatchName: "api.example.com"}, {MatchPattern: "*.cdn.example.com"}}},
			{Policy: testRef("default/dns-internal"), Port: 53, Protocol: protoUDP,
				Servers: []netip.Prefix{netip.MustParsePrefix("198.18.0.53/32")}, Names: []Selector{{MatchPattern: "**.internal"}}},
			{Policy: testRef("default/also-api"), Port: 53, Names: []Selector{{MatchPattern: "api.example.*"}}},
		},
		2: {{Policy: testRef("default/any"), Names: []Selector{{MatchPattern: "*"}}}},
		3: {{Policy: testRef("default/visibility")}}, // no names: every name
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		q        Query
		allowed  bool
		policies []api.PolicyRef
	}{
		{"an exact name is allowed by both policies selecting it",
			Query{1, server, protoUDP, "API.example.com"}, true, testRefs("default/also-api", "default/web")},
		{"a pattern allows a name one label deep",
			Query{1, server, protoTCP, "img.cdn.example.com."}, true, testRefs("default/web")},
		{"the pattern does not allow two labels deep: denied by the rules that applied",
			Query{1, server, protoTCP, "a.img.cdn.example.com."}, false, testRefs("default/also-api", "default/web")},
		{"a server-scoped rule allows its server",
			Query{1, server, protoUDP, "db.eu.internal."}, true, testRefs("default/dns-internal")},
		{"a server-scoped rule does not apply to another server",
			Query{1, other, protoUDP, "db.eu.internal."}, false, testRefs("default/also-api", "default/web")},
		{"a UDP-only rule does not apply over TCP",
			Query{1, server, protoTCP, "db.eu.internal."}, false, testRefs("default/also-api", "default/web")},
		{"a query to a port no rule covers names all the endpoint's policies",
			Query{1, netip.MustParseAddrPort("198.18.0.53:5353"), protoUDP, "api.example.com."}, false,
			testRefs("default/also-api", "default/dns-internal", "default/web")},
		{"* allows any name at all in rules.dns",
			Query{2, server, protoUDP, "we\\032ird.example."}, true, testRefs("default/any")},
		{"a rule with no names allows every name",
			Query{3, other, protoTCP, "anything.example."}, true, testRefs("default/visibility")},
		{"an endpoint without rules is denied and names nothing",
			Query{4, server, protoUDP, "api.example.com."}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tab.Check(tt.q)
			if v.Allowed != tt.allowed || !slices.Equal(v.Policies, tt.policies) {
				t.Fatalf("Check(%+v) = %+v, want allowed=%v policies=%v", tt.q, v, tt.allowed, tt.policies)
			}
		})
	}
	if !tab.Covers(3) || tab.Covers(4) {
		t.Errorf("Covers(3)=%v Covers(4)=%v, want true false", tab.Covers(3), tab.Covers(4))
	}
}

func TestTableReplaceIsAllOrNothing(t *testing.T) {
	tab := NewTable()
	good := map[uint32][]Rule{1: {{Policy: testRef("p"), Names: []Selector{{MatchName: "a.io"}}}}}
	if err := tab.Replace(good); err != nil {
		t.Fatal(err)
	}
	bad := map[uint32][]Rule{1: {{Policy: testRef("q"), Names: []Selector{{MatchPattern: "a(b).io"}}}}}
	err := tab.Replace(bad)
	if err == nil || !strings.Contains(err.Error(), `policy "q"`) {
		t.Fatalf("Replace(bad) = %v, want an error naming policy q", err)
	}
	if v := tab.Check(Query{Endpoint: 1, Name: "a.io"}); !v.Allowed {
		t.Fatalf("after a failed Replace the old rules must stay: %+v", v)
	}
	if err := tab.Replace(map[uint32][]Rule{1: {{Policy: testRef("p"), Protocol: 1}}}); err == nil {
		t.Fatal("Replace accepted a rule for ICMP")
	}
}

func TestTableCheckOfAnAllowedQueryDoesNotAllocate(t *testing.T) {
	tab := NewTable()
	if err := tab.Replace(map[uint32][]Rule{7: {{Policy: testRef("p"), Port: 53, Names: []Selector{{MatchPattern: "*.example.com"}}}}}); err != nil {
		t.Fatal(err)
	}
	q := Query{7, netip.MustParseAddrPort("[fd00::53]:53"), protoUDP, "www.example.com."}
	if n := testing.AllocsPerRun(100, func() { _ = tab.Check(q) }); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
}

func TestRulesByServerIdentityAndOpenEndpoints(t *testing.T) {
	kubeDNS := netip.MustParseAddrPort("198.18.0.10:53")
	world := netip.MustParseAddrPort("198.19.0.53:53")
	identities := map[netip.Addr]uint32{kubeDNS.Addr(): 300}
	lookups := 0
	tab := NewTable()
	err := tab.Set(Rules{
		ByEndpoint: map[uint32][]Rule{
			1: {{Policy: testRef("default/dns"), Port: 53, ServerIdentities: []uint32{300}, Names: []Selector{{MatchPattern: "*.example.com"}}},
				{Policy: testRef("default/also"), Port: 53, ServerIdentities: []uint32{300, 301}, Names: []Selector{{MatchName: "a.example.com"}}}},
			2: {{Policy: testRef("default/open"), Port: 53, ServerIdentities: []uint32{300}, Names: []Selector{{MatchName: "a.example.com"}}}},
		},
		Open: map[uint32]bool{2: true},
		IdentityOf: func(a netip.Addr) uint32 {
			lookups++
			if id, ok := identities[a]; ok {
				return id
			}
			return 2 // world
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		q        Query
		allowed  bool
		policies []api.PolicyRef
	}{
		{"a rule covers the servers of its identities", Query{1, kubeDNS, protoUDP, "www.example.com"}, true, testRefs("default/dns")},
		{"and names every rule allowing", Query{1, kubeDNS, protoUDP, "a.example.com"}, true, testRefs("default/also", "default/dns")},
		{"not a server of another identity", Query{1, world, protoUDP, "www.example.com"}, false, testRefs("default/also", "default/dns")},
		{"an open endpoint's query no rule covers passes", Query{2, world, protoUDP, "evil.com"}, true, nil},
		{"an open endpoint's rules still judge their servers", Query{2, kubeDNS, protoUDP, "evil.com"}, false, testRefs("default/open")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookups = 0
			v := tab.Check(tc.q)
			if v.Allowed != tc.allowed || !slices.Equal(v.Policies, tc.policies) {
				t.Fatalf("Check = %+v, want allowed=%v policies=%v", v, tc.allowed, tc.policies)
			}
			if lookups != 1 {
				t.Fatalf("the server's identity was looked up %d times, want once", lookups)
			}
		})
	}
	if got := tab.Current(); !got.Open[2] || len(got.ByEndpoint) != 2 {
		t.Fatalf("Current() = %+v", got)
	}
}

func TestAuditEndpointsHaveTheirDenialsMarked(t *testing.T) {
	server := netip.MustParseAddrPort("198.18.0.53:53")
	tab := NewTable()
	rules := []Rule{{Policy: testRef("default/web"), Port: 53, Names: []Selector{{MatchName: "api.example.com"}}}}
	err := tab.Set(Rules{ByEndpoint: map[uint32][]Rule{1: rules, 2: rules}, Audit: map[uint32]bool{2: true, 3: true}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		q        Query
		allowed  bool
		audit    bool
		policies []api.PolicyRef
	}{
		{"enforcing: a denied name is denied", Query{1, server, protoUDP, "www.example.com"}, false, false, testRefs("default/web")},
		{"audit mode: a denied name is marked, naming the policy", Query{2, server, protoUDP, "www.example.com"}, false, true, testRefs("default/web")},
		{"audit mode: an allowed name is allowed, not marked", Query{2, server, protoUDP, "api.example.com"}, true, false, testRefs("default/web")},
		{"audit mode without rules: not the proxy's endpoint, denied", Query{3, server, protoUDP, "api.example.com"}, false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tab.Check(tt.q)
			if v.Allowed != tt.allowed || v.Audit != tt.audit || !slices.Equal(v.Policies, tt.policies) {
				t.Fatalf("Check(%+v) = %+v, want allowed=%v audit=%v policies=%v", tt.q, v, tt.allowed, tt.audit, tt.policies)
			}
		})
	}
}

func TestSetIdentityOfKeepsTheRulesAndLooksServersUpAnew(t *testing.T) {
	server := netip.MustParseAddrPort("198.19.0.53:53")
	tab := NewTable()
	err := tab.Set(Rules{
		ByEndpoint: map[uint32][]Rule{1: {{Policy: testRef("default/dns"), Port: 53, ServerIdentities: []uint32{300},
			Names: []Selector{{MatchPattern: "*.example.com"}}}}},
		IdentityOf: func(netip.Addr) uint32 { return 2 },
	})
	if err != nil {
		t.Fatal(err)
	}
	q := Query{1, server, protoUDP, "www.example.com"}
	if v := tab.Check(q); v.Allowed {
		t.Fatalf("a server of world is covered: %+v", v)
	}
	tab.SetIdentityOf(func(netip.Addr) uint32 { return 300 })
	if v := tab.Check(q); !v.Allowed || !slices.Equal(v.Policies, testRefs("default/dns")) {
		t.Fatalf("after SetIdentityOf the server of identity 300 is not covered: %+v", v)
	}
	if got := tab.Current(); len(got.ByEndpoint[1]) != 1 || got.IdentityOf(server.Addr()) != 300 {
		t.Fatalf("Current() = %+v", got)
	}
}
