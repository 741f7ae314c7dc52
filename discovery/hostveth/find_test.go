package hostveth

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/discovery"
)

func TestFindBehindABridge(t *testing.T) {
	lab := labtest.NewLab(t)
	var pods []*netlab.Pod
	for _, name := range []string{"a", "b", "c"} {
		p, err := lab.AddPod(netlab.PodSpec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	for _, p := range pods {
		want := discovery.Interface{Name: p.HostVeth.Name, Index: p.HostVeth.Index}
		for _, tc := range []struct {
			name string
			ips  []netip.Addr
		}{
			{"by its IPv4 address", []netip.Addr{p.IPv4}},
			{"by its IPv6 address", []netip.Addr{p.IPv6}},
			{"by the second address when the first leads nowhere", []netip.Addr{netip.MustParseAddr("198.19.254.254"), p.IPv4}},
		} {
			got, err := Find(tc.ips)
			if err != nil {
				t.Fatalf("pod %s %s: %v", p.Name, tc.name, err)
			}
			if got != want {
				t.Errorf("pod %s %s: got %+v, want %+v", p.Name, tc.name, got, want)
			}
		}
	}
}

// A Calico-style veth: no bridge, a /32 route to the pod's address through
// the veth. The routed address is not in the pod's namespace, so only the
// route can lead to it.
func TestFindByRoute(t *testing.T) {
	lab := labtest.NewLab(t)
	p, err := lab.AddPod(netlab.PodSpec{Name: "routed"})
	if err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByIndex(p.HostVeth.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNoMaster(host); err != nil {
		t.Fatal(err)
	}
	// 198.19.0.0/16 is left to tests' own root-namespace routes; the lab's
	// slot id keeps parallel tests apart.
	routed := netip.AddrFrom4([4]byte{198, 19, lab.IPv4Net.Addr().As4()[2], 77})
	route := &netlink.Route{
		LinkIndex: p.HostVeth.Index,
		Dst:       &net.IPNet{IP: routed.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Scope:     netlink.SCOPE_LINK,
	}
	if err := netlink.RouteAdd(route); err != nil {
		t.Fatalf("add route %s: %v", route.Dst, err)
	}
	t.Cleanup(func() { netlink.RouteDel(route) })

	got, err := Find([]netip.Addr{routed})
	if err != nil {
		t.Fatal(err)
	}
	if want := (discovery.Interface{Name: p.HostVeth.Name, Index: p.HostVeth.Index}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Detached from the bridge, the pod's own address still leads to it
	// through its namespace.
	got, err = Find([]netip.Addr{p.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != p.HostVeth.Index {
		t.Errorf("by the pod's address: got %+v, want %s", got, p.HostVeth.Name)
	}
}

func TestFindNothing(t *testing.T) {
	lab := labtest.NewLab(t)
	if _, err := lab.AddPod(netlab.PodSpec{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	// An unused address of the lab's subnet: the route names the bridge, no
	// port leads there.
	unused := lab.IPv4Net.Addr().As4()
	unused[3] = 200
	for _, ips := range [][]netip.Addr{{netip.AddrFrom4(unused)}, nil} {
		if _, err := Find(ips); err == nil {
			t.Errorf("Find(%v) found something", ips)
		} else if ips != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("Find(%v): %v, want ErrNotFound", ips, err)
		}
	}
}
