package collector

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// peersTopology: two pods on one bridge with link-local addresses, a third
// sharing one of them (link-local addresses are unique per link only), and
// the host with a global and a link-local address.
func peersTopology() *Topology {
	ll := netip.MustParseAddr
	return &Topology{
		NodeName: "node1",
		Endpoints: []ResolvedEndpoint{
			{Config: EndpointConfig{Name: "web", Labels: map[string]string{"app": "web"}}, HostIfIndex: 10, HostIfName: "veth-web",
				IPs: []netip.Addr{ll("198.18.0.2"), ll("fd00::2")}, LinkLocal: []netip.Addr{ll("fe80::a")}},
			{Config: EndpointConfig{Name: "db", Labels: map[string]string{"app": "db"}}, HostIfIndex: 11, HostIfName: "veth-db",
				IPs: []netip.Addr{ll("198.18.0.3")}, LinkLocal: []netip.Addr{ll("fe80::b"), ll("169.254.0.9")}},
			{Config: EndpointConfig{Name: "twin", Labels: map[string]string{"app": "twin"}}, HostIfIndex: 12, HostIfName: "veth-twin",
				IPs: []netip.Addr{ll("198.18.0.4")}, LinkLocal: []netip.Addr{ll("fe80::b")}},
		},
		HostAddrs:   []netip.Addr{ll("198.18.0.1"), ll("fe80::1")},
		RemoteNodes: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/24"), netip.MustParsePrefix("fd00:1::/64")},
	}
}

func TestPeersWithoutAnEndpointCarryReservedIdentities(t *testing.T) {
	r, err := NewRegistry(peersTopology())
	if err != nil {
		t.Fatal(err)
	}
	web, db, twin := r.byIfIndex[10].endpoint, r.byIfIndex[11].endpoint, r.byIfIndex[12].endpoint
	host := api.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
	world := api.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
	remoteNode := api.Endpoint{Identity: 6, Labels: []string{"reserved:remote-node"}}
	none := api.Endpoint{}
	tests := []struct {
		name     string
		src, dst string
		ifindex  uint32
		wantSrc  api.Endpoint
		wantDst  api.Endpoint
	}{
		{"the host's address is reserved:host", "198.18.0.2", "198.18.0.1", 10, web, host},
		{"the host's link-local address is reserved:host", "fe80::1", "fe80::a", 10, host, web},
		{"an address no endpoint or host has is reserved:world", "203.0.113.7", "198.18.0.3", 11, world, db},
		{"an IPv6 one too", "2001:db8::7", "fd00::2", 10, world, web},
		{"another node's address is reserved:remote-node", "198.19.0.5", "198.18.0.2", 10, remoteNode, web},
		{"an IPv6 one too", "fd00::2", "fd00:1::9", 10, web, remoteNode},
		{"a pod's link-local address is the pod's", "fe80::a", "ff02::2", 10, web, world},
		{"and still the pod's where its peer observes it", "fe80::a", "fe80::b", 11, web, db},
		{"a link-local address two pods share is the observed pod's", "fe80::b", "ff02::1:ff00:b", 12, twin, world},
		{"elsewhere a shared link-local address is nobody's", "fe80::b", "fe80::a", 10, world, web},
		{"an IPv4 link-local address is the pod's too", "169.254.0.9", "224.0.0.22", 11, db, world},
		{"a multicast group is reserved:world, not a workload", "fd00::2", "ff02::16", 10, web, world},
		{"the unspecified source of duplicate address detection has no identity", "::", "ff02::1:ff00:a", 10, none, world},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := api.Flow{IP: api.IP{Source: netip.MustParseAddr(tt.src), Destination: netip.MustParseAddr(tt.dst)},
				Interface: api.Interface{Index: tt.ifindex}, Type: api.FlowTypeL3L4}
			r.Enrich(&f)
			if !reflect.DeepEqual(f.Source, tt.wantSrc) || !reflect.DeepEqual(f.Destination, tt.wantDst) {
				t.Errorf("source %+v destination %+v, want %+v and %+v", f.Source, f.Destination, tt.wantSrc, tt.wantDst)
			}
		})
	}
	t.Run("a link-local flow the pod sent is its egress", func(t *testing.T) {
		f := api.Flow{IP: api.IP{Source: netip.MustParseAddr("fe80::a"), Destination: netip.MustParseAddr("ff02::2")},
			Interface: api.Interface{Index: 10}, Type: api.FlowTypeL3L4}
		r.Enrich(&f)
		if f.TrafficDirection != api.TrafficDirectionEgress {
			t.Errorf("direction %v, want EGRESS", f.TrafficDirection)
		}
	})
	t.Run("enriching peers allocates nothing", func(t *testing.T) {
		f := api.Flow{IP: api.IP{Source: netip.MustParseAddr("fe80::a"), Destination: netip.MustParseAddr("203.0.113.7")},
			Interface: api.Interface{Index: 10}}
		if n := testing.AllocsPerRun(100, func() { r.Enrich(&f) }); n != 0 {
			t.Errorf("Enrich allocates %v times per flow", n)
		}
	})
	t.Run("status lists an endpoint's link-local addresses", func(t *testing.T) {
		for _, e := range r.Endpoints() {
			if e.Name == "db" && !reflect.DeepEqual(e.LinkLocal, []string{"fe80::b", "169.254.0.9"}) {
				t.Errorf("db's link-local addresses %v", e.LinkLocal)
			}
		}
	})
}
