package collector

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

func TestTheRegistryShowsPolicyItsEndpoints(t *testing.T) {
	topo := testTopology()
	topo.Endpoints[1].Config.Audit = true
	topo.NodeLabels = map[string]string{"node-access": "ssh"}
	topo.RemoteNodes = []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24")}
	r, err := NewRegistry(topo)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.RemoteNodes(); !reflect.DeepEqual(got, topo.RemoteNodes) {
		t.Errorf("remote nodes %v, want %v", got, topo.RemoteNodes)
	}
	fe, _ := r.LookupIfIndex(10)
	be, _ := r.LookupIfIndex(11)
	want := []policystore.Endpoint{
		{Name: "frontend-7d4", ID: 10, Identity: fe.Identity, Namespace: "default", Labels: fe.Labels,
			IPs: []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd00::2")}},
		{Name: "backend", ID: 11, Identity: be.Identity, Namespace: "shop", Labels: be.Labels,
			IPs: []netip.Addr{netip.MustParseAddr("198.18.0.3")}, Audit: true},
		{Name: "host:eth0", ID: 2, Identity: 1, Labels: []string{"k8s:node-access=ssh", "reserved:host"}, Host: true},
	}
	if got := r.PolicyEndpoints(); !reflect.DeepEqual(got, want) {
		t.Errorf("policy endpoints\n%+v\nwant\n%+v", got, want)
	}
	if got := r.HostAddrs(); !reflect.DeepEqual(got, topo.HostAddrs) {
		t.Errorf("host addresses %v, want %v", got, topo.HostAddrs)
	}
	ids := map[uint32]string{}
	for _, i := range r.Identities() {
		ids[uint32(i.ID)] = i.Labels.String()
	}
	if ids[1] != "reserved:host" || ids[fe.Identity] != strings.Join(fe.Labels, ",") || ids[be.Identity] != strings.Join(be.Labels, ",") {
		t.Errorf("identities %v lack the reserved or the endpoints' ones", ids)
	}
}

// recordingApplier keeps what a policy store applies.
type recordingApplier struct {
	last  *compile.Compiled
	audit map[uint32]bool
}

func (a *recordingApplier) ApplyPolicy(c *compile.Compiled) error { a.last = c; return nil }

func (a *recordingApplier) SetPolicyAudit(ep uint32, audit bool) error {
	a.audit[ep] = audit
	return nil
}

func TestAPolicyStoreOverTheRegistryEnforcesOnItsEndpoints(t *testing.T) {
	topo := testTopology()
	topo.Endpoints[1].Config.Audit = true
	r, err := NewRegistry(topo)
	if err != nil {
		t.Fatal(err)
	}
	a := &recordingApplier{audit: map[uint32]bool{}}
	s, err := policystore.New(policystore.Options{Applier: a, Endpoints: r})
	if err != nil {
		t.Fatal(err)
	}
	const web = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web, namespace: shop}\n" +
		"spec:\n  endpointSelector: {}\n  ingress: [{fromEntities: [host]}]\n"
	if _, _, err := s.Apply("web.yaml", []byte(web)); err != nil {
		t.Fatal(err)
	}
	if !a.audit[11] || a.audit[10] {
		t.Errorf("audit %v, want backend (11) only", a.audit)
	}
	if e := a.last.Enforce; !e[11].Ingress || e[10].Ingress {
		t.Errorf("enforcement %+v, want default deny at ingress for backend (11) only", e)
	}
	if got := a.last.IPCache[netip.MustParsePrefix("198.19.0.1/32")]; got != 1 {
		t.Errorf("host address has identity %d, want 1 (host)", got)
	}
}
