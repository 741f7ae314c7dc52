package hostveth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

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

// TestNetworksAreTheRoutesToWorkloads: the lab's bridge (all its ports
// pods' veths) is a workload network, and so is a /32 routed to a pod's
// veth; an address elsewhere is not; Run sees a route added later.
func TestNetworksAreTheRoutesToWorkloads(t *testing.T) {
	lab := labtest.NewLab(t)
	p, err := lab.AddPod(netlab.PodSpec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNetworks(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
		if !n.Contains(a) {
			t.Errorf("%s (behind the lab's bridge) is not on a workload network: %v", a, n.Prefixes())
		}
	}
	routed := netip.AddrFrom4([4]byte{198, 19, lab.IPv4Net.Addr().As4()[2], 78})
	for _, a := range []netip.Addr{routed, netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("127.0.0.1")} {
		if n.Contains(a) {
			t.Errorf("%s is on a workload network: %v", a, n.Prefixes())
		}
	}
	route := &netlink.Route{
		LinkIndex: p.HostVeth.Index,
		Dst:       &net.IPNet{IP: routed.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Scope:     netlink.SCOPE_LINK,
	}
	if err := netlink.RouteAdd(route); err != nil {
		t.Fatalf("add route %s: %v", route.Dst, err)
	}
	t.Cleanup(func() { netlink.RouteDel(route) })
	deadline := time.Now().Add(10 * time.Second)
	for !n.Contains(routed) {
		if time.Now().After(deadline) {
			t.Fatalf("%s routed to a pod's veth: not a workload network after 10s: %v", routed, n.Prefixes())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
