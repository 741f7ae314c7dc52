package compile

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/policy"
)

// TestLocalIngressListsTheEndpointsWhoseIngressIsJudged: exactly the local
// endpoints some policy judges in the ingress direction (default deny, or
// entries of that direction) are listed, by every address.
func TestLocalIngressListsTheEndpointsWhoseIngressIsJudged(t *testing.T) {
	sel := func(app string) policy.Selector {
		return policy.Selector{Reqs: []policy.Requirement{{Source: "k8s", Key: "app", Op: policy.OpIn, Values: []string{app}}}}
	}
	anyone := []policy.PeerRule{{Peers: []policy.PeerSelector{{All: true}}}}
	pols := []*policy.Policy{{Name: "p", Kind: policy.KindCCNP, Rules: []policy.Rule{
		{Subject: sel("db"), Ingress: policy.DirectionRules{DefaultDeny: true}},
		{Subject: sel("web"), Ingress: policy.DirectionRules{Deny: anyone}},
		{Subject: sel("client"), Egress: policy.DirectionRules{DefaultDeny: true, Allow: anyone}},
	}}}
	ep := func(id uint32, app string, addrs ...string) Endpoint {
		e := Endpoint{ID: id, Identity: 1000 + id, Labels: []string{"k8s:app=" + app}}
		for _, a := range addrs {
			e.IPs = append(e.IPs, netip.MustParseAddr(a))
		}
		return e
	}
	c, err := Compile(Input{Policies: pols, Endpoints: []Endpoint{
		ep(1, "db", "10.0.0.1", "fd00::1"),
		ep(2, "web", "::ffff:10.0.0.2"),
		ep(3, "client", "10.0.0.3"),
		ep(4, "other", "10.0.0.4"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]uint32{
		netip.MustParseAddr("10.0.0.1"): 1, netip.MustParseAddr("fd00::1"): 1, // default deny
		netip.MustParseAddr("10.0.0.2"): 2, // a deny entry only; the mapped address unmapped
	}
	if !maps.Equal(c.LocalIngress, want) {
		t.Fatalf("LocalIngress %v, want %v", c.LocalIngress, want)
	}
}
