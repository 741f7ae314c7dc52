package xds

import (
	"net/netip"
	"slices"
	"testing"

	rbacconf "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/periscope-dev/periscope/api"
)

// httpFilters returns a built listener's HTTP connection manager.
func connectionManager(t *testing.T, l Listener) *hcm.HttpConnectionManager {
	t.Helper()
	snap, err := Build("1", []Listener{l}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis := listenerNamed(snap, l.Name())
	if err := lis.ValidateAll(); err != nil {
		t.Fatalf("listener does not validate: %v", err)
	}
	var m hcm.HttpConnectionManager
	if err := lis.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
		t.Fatal(err)
	}
	if err := m.ValidateAll(); err != nil {
		t.Fatalf("connection manager does not validate: %v", err)
	}
	return &m
}

var (
	shopWeb  = api.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "web", Revision: 7}
	lockdown = api.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: "lockdown", Revision: 3}
)

func TestL7RulesBecomeAnRBACFilter(t *testing.T) {
	rules := Rules{Groups: []PeerGroup{
		{Policies: []api.PolicyRef{shopWeb}, Peers: Peers{Ranges: []Range{{Prefix: netip.MustParsePrefix("198.18.0.2/32")}}},
			HTTP: []HTTPRule{{Method: "GET", Path: "/public/.*"}, {Headers: []Header{{Name: "X-Env", Value: "prod"}, {Name: "x-trace"}}}}},
		{Policies: []api.PolicyRef{shopWeb, lockdown}, Peers: Peers{Ranges: []Range{{Prefix: netip.MustParsePrefix("10.0.0.0/8"),
			Except: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}}}},
		{Peers: Peers{Ranges: []Range{{Prefix: netip.MustParsePrefix("10.1.0.0/16")}}}, AllowAll: true},
		{Policies: []api.PolicyRef{shopWeb}, Peers: Peers{Rest: true, RestExcept: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("198.18.0.2/32")}}},
	}}
	for _, tc := range []struct {
		audit bool
		dir   string
	}{{false, "ingress"}, {true, "ingress"}, {false, "egress"}} {
		audit := tc.audit
		rules.Audit = audit
		m := connectionManager(t, Listener{Endpoint: 7, Direction: tc.dir, Port: 80, ProxyPort: 15100, Rules: rules})
		fs := m.GetHttpFilters()
		if len(fs) != 2 || fs[0].GetName() != RBACFilter || fs[1].GetName() != "envoy.filters.http.router" {
			t.Fatalf("filters %v, want RBAC then the router", fs)
		}
		var f rbac.RBAC
		if err := fs[0].GetTypedConfig().UnmarshalTo(&f); err != nil {
			t.Fatal(err)
		}
		if err := f.ValidateAll(); err != nil {
			t.Fatalf("RBAC does not validate: %v", err)
		}
		mt := f.GetMatcher()
		if audit {
			if mt != nil {
				t.Fatal("audit enforces")
			}
			mt = f.GetShadowMatcher()
		}
		// One denying action per group that does not allow everything,
		// one for addresses in no group, else allowed.
		var names []string
		for _, fm := range mt.GetMatcherList().GetMatchers() {
			var a rbacconf.Action
			if err := fm.GetOnMatch().GetAction().GetTypedConfig().UnmarshalTo(&a); err != nil {
				t.Fatal(err)
			}
			if a.GetAction() != rbacconf.RBAC_DENY {
				t.Fatalf("action %v of %s, want DENY", a.GetAction(), a.GetName())
			}
			names = append(names, a.GetName())
		}
		want := []string{PolicyName([]api.PolicyRef{shopWeb}, 0), PolicyName([]api.PolicyRef{shopWeb, lockdown}, 1),
			PolicyName([]api.PolicyRef{shopWeb}, 3), PolicyName([]api.PolicyRef{shopWeb, lockdown}, 4)}
		if !slices.Equal(names, want) {
			t.Fatalf("actions %v, want %v", names, want)
		}
		var a rbacconf.Action
		if err := mt.GetOnNoMatch().GetAction().GetTypedConfig().UnmarshalTo(&a); err != nil || a.GetAction() != rbacconf.RBAC_ALLOW {
			t.Fatalf("no match: %v %v, want ALLOW", a.GetAction(), err)
		}
		if got := PolicyRefs(PolicyName([]api.PolicyRef{shopWeb, lockdown}, 1)); !slices.Equal(got, []api.PolicyRef{shopWeb, lockdown}) {
			t.Fatalf("refs %v", got)
		}
	}
}

func TestVisibilityOnlyHasNoRBAC(t *testing.T) {
	m := connectionManager(t, Listener{Endpoint: 7, Direction: "ingress", Port: 80, ProxyPort: 15100})
	if fs := m.GetHttpFilters(); len(fs) != 1 {
		t.Fatalf("filters %v, want the router only", fs)
	}
	if len(m.GetLocalReplyConfig().GetMappers()) != 1 {
		t.Fatal("no 403 Access denied reply")
	}
}
