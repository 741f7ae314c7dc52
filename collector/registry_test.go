package collector

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

func testTopology() *Topology {
	return &Topology{
		NodeName: "node1",
		Endpoints: []ResolvedEndpoint{
			{
				Config:      EndpointConfig{Name: "frontend-7d4", Labels: map[string]string{"app": "frontend", "tier": "web"}},
				HostIfIndex: 10, HostIfName: "veth-fe-h",
				IPs: []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd00::2")},
			},
			{
				Config:      EndpointConfig{Name: "backend", Namespace: "shop"},
				HostIfIndex: 11, HostIfName: "veth-be-h",
				IPs: []netip.Addr{netip.MustParseAddr("198.18.0.3")},
			},
		},
		HostInterfaces:  []HostInterface{{Index: 2, Name: "eth0"}},
		HostAddrs:       []netip.Addr{netip.MustParseAddr("198.19.0.1")},
		NamespaceLabels: map[string]map[string]string{"default": {"team": "web"}},
	}
}

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	r, err := NewRegistry(testTopology())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEndpointLabelsAndIdentity(t *testing.T) {
	r := testRegistry(t)
	fe, ok := r.LookupIP(netip.MustParseAddr("198.18.0.2"))
	if !ok {
		t.Fatal("frontend not found by IP")
	}
	wantLabels := []string{"k8s:app=frontend", "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
		"k8s:io.cilium.k8s.namespace.labels.team=web", "k8s:io.cilium.k8s.policy.cluster=default",
		"k8s:io.kubernetes.pod.namespace=default", "k8s:tier=web"}
	if !reflect.DeepEqual(fe.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", fe.Labels, wantLabels)
	}
	if fe.Workload != "frontend" || fe.PodName != "frontend-7d4" || fe.Namespace != "default" || fe.ID != 10 {
		t.Errorf("endpoint %+v", fe)
	}
	be, _ := r.LookupIfIndex(11)
	if be.Workload != "backend" {
		t.Errorf("workload without an app label is %q, want the name", be.Workload)
	}
	for _, ep := range []api.Endpoint{fe, be} {
		if ep.Identity < 256 || ep.Identity > 65535 {
			t.Errorf("identity %d out of the placeholder range", ep.Identity)
		}
	}
	if fe.Identity == be.Identity {
		t.Errorf("different label sets share identity %d", fe.Identity)
	}
	// Deterministic: the same labels give the same identity in another registry.
	if again := testRegistry(t); again.byIfIndex[10].endpoint.Identity != fe.Identity {
		t.Error("identity is not deterministic")
	}
	if got := uint32(identity.PreferredID(endpointLabels("default", "default", map[string]string{"team": "web"}, map[string]string{"app": "frontend", "tier": "web"}))); got != fe.Identity {
		t.Errorf("identity depends on more than labels: %d vs %d", got, fe.Identity)
	}
}

func TestEndpointsCarryTheClusterAndTheirNamespacesLabels(t *testing.T) {
	topo := testTopology()
	topo.ClusterName = "mesh-1"
	topo.NamespaceLabels["shop"] = map[string]string{"env": "prod", NamespaceNameLabel: "shop"}
	r, err := NewRegistry(topo)
	if err != nil {
		t.Fatal(err)
	}
	be, _ := r.LookupIfIndex(11)
	want := []string{"k8s:io.cilium.k8s.namespace.labels.env=prod", "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
		"k8s:io.cilium.k8s.policy.cluster=mesh-1", "k8s:io.kubernetes.pod.namespace=shop"}
	if !reflect.DeepEqual(be.Labels, want) {
		t.Errorf("labels\n%v\nwant\n%v", be.Labels, want)
	}
	fe, _ := r.LookupIfIndex(10)
	if again := testRegistry(t); again.byIfIndex[10].endpoint.Identity == fe.Identity {
		t.Errorf("another cluster name kept identity %d", fe.Identity)
	}
}

func TestEnrich(t *testing.T) {
	r := testRegistry(t)
	fe, be := r.byIfIndex[10].endpoint, r.byIfIndex[11].endpoint
	host := api.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
	world := api.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
	flow := func(src, dst string, ifindex uint32, typ api.FlowType) api.Flow {
		return api.Flow{
			IP:        api.IP{Source: netip.MustParseAddr(src), Destination: netip.MustParseAddr(dst)},
			Interface: api.Interface{Index: ifindex},
			Type:      typ,
			// Stale values from a reused Flow must be overwritten.
			Source: api.Endpoint{PodName: "stale"}, Destination: api.Endpoint{PodName: "stale"},
		}
	}
	tests := []struct {
		name     string
		in       api.Flow
		src, dst api.Endpoint
		ifname   string
		dir      api.TrafficDirection
	}{
		{"a flow the observed endpoint initiated is egress",
			flow("198.18.0.2", "198.18.0.3", 10, api.FlowTypeL3L4), fe, be, "veth-fe-h", api.TrafficDirectionEgress},
		{"the same flow seen at the responder is ingress",
			flow("198.18.0.2", "198.18.0.3", 11, api.FlowTypeL3L4), fe, be, "veth-be-h", api.TrafficDirectionIngress},
		{"IPv6 addresses are looked up too",
			flow("fd00::2", "fd00::99", 10, api.FlowTypeL3L4), fe, world, "veth-fe-h", api.TrafficDirectionEgress},
		{"an unknown peer is the world",
			flow("203.0.113.9", "198.18.0.3", 11, api.FlowTypeL3L4), world, be, "veth-be-h", api.TrafficDirectionIngress},
		{"a host interface flow from a host address is egress",
			flow("198.19.0.1", "203.0.113.9", 2, api.FlowTypeL3L4), host, world, "eth0", api.TrafficDirectionEgress},
		{"a host interface flow to the host is ingress",
			flow("203.0.113.9", "198.19.0.1", 2, api.FlowTypeL3L4), world, host, "eth0", api.TrafficDirectionIngress},
		{"a SOCK flow from the host is egress",
			flow("198.19.0.1", "198.18.0.2", 0, api.FlowTypeSock), host, fe, "", api.TrafficDirectionEgress},
		{"an IPv4-mapped address matches its IPv4 endpoint",
			flow("::ffff:198.18.0.3", "198.18.0.2", 11, api.FlowTypeL3L4), be, fe, "veth-be-h", api.TrafficDirectionEgress},
		{"an L7 record without an interface keeps its producer's direction",
			withDirection(flow("198.18.0.2", "198.18.0.3", 0, api.FlowTypeL7), api.TrafficDirectionEgress), fe, be, "", api.TrafficDirectionEgress},
		{"an L7 response keeps its producer's direction too",
			withDirection(flow("198.18.0.3", "198.18.0.2", 0, api.FlowTypeL7), api.TrafficDirectionIngress), be, fe, "", api.TrafficDirectionIngress},
		{"an L7 record without a direction is judged from the host",
			flow("198.18.0.2", "198.18.0.3", 0, api.FlowTypeL7), fe, be, "", api.TrafficDirectionIngress},
		{"an L3/L4 flow's stale direction is overwritten",
			withDirection(flow("198.19.0.1", "198.18.0.3", 2, api.FlowTypeL3L4), api.TrafficDirectionIngress), host, be, "eth0", api.TrafficDirectionEgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.in
			r.Enrich(&f)
			if !reflect.DeepEqual(f.Source, tt.src) {
				t.Errorf("source %+v, want %+v", f.Source, tt.src)
			}
			if !reflect.DeepEqual(f.Destination, tt.dst) {
				t.Errorf("destination %+v, want %+v", f.Destination, tt.dst)
			}
			if f.Interface.Name != tt.ifname || f.NodeName != "node1" || f.TrafficDirection != tt.dir {
				t.Errorf("interface %q node %q direction %v, want %q node1 %v",
					f.Interface.Name, f.NodeName, f.TrafficDirection, tt.ifname, tt.dir)
			}
		})
	}
}

func TestEnrichNamesBothObservationPointsOfAConnection(t *testing.T) {
	r := testRegistry(t)
	f := api.Flow{IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3")},
		Type: api.FlowTypeL3L4, Interface: api.Interface{Index: 10}, Other: api.Observation{Interface: api.Interface{Index: 11}}}
	r.Enrich(&f)
	if f.Interface.Name != "veth-fe-h" || f.TrafficDirection != api.TrafficDirectionEgress {
		t.Errorf("own point %q %v, want the client's veth, egress", f.Interface.Name, f.TrafficDirection)
	}
	if f.Other.Interface.Name != "veth-be-h" || f.Other.TrafficDirection != api.TrafficDirectionIngress {
		t.Errorf("other point %q %v, want the server's veth, ingress", f.Other.Interface.Name, f.Other.TrafficDirection)
	}
}

// withDirection gives f a direction, as an L7 producer (or a reused Flow) does.
func withDirection(f api.Flow, dir api.TrafficDirection) api.Flow {
	f.TrafficDirection = dir
	return f
}

func TestEnrichAllocatesNothing(t *testing.T) {
	r := testRegistry(t)
	f := api.Flow{IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3")},
		Interface: api.Interface{Index: 10}, Other: api.Observation{Interface: api.Interface{Index: 11}}}
	if n := testing.AllocsPerRun(100, func() { r.Enrich(&f) }); n != 0 {
		t.Errorf("Enrich allocates %v times per flow", n)
	}
}

func TestRegistryRejectsSharedIP(t *testing.T) {
	topo := testTopology()
	topo.Endpoints[1].IPs = append(topo.Endpoints[1].IPs, netip.MustParseAddr("198.18.0.2"))
	if _, err := NewRegistry(topo); err == nil {
		t.Error("two endpoints with one IP were accepted")
	}
}

func TestRegistryInterfaces(t *testing.T) {
	got := testRegistry(t).Interfaces()
	if want := []string{"veth-fe-h", "veth-be-h", "eth0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("interfaces %v, want %v", got, want)
	}
}
