package hostveth

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/nldump"
)

// ErrNotFound is returned (wrapped) when no host veth leads to any of the
// addresses.
var ErrNotFound = errors.New("no host veth leads to the address")

// Find returns the host-side veth of the workload that has the addresses
// ips: the first address that leads to one decides.
func Find(ips []netip.Addr) (discovery.Interface, error) {
	if len(ips) == 0 {
		return discovery.Interface{}, fmt.Errorf("find host veth: no addresses")
	}
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil {
		return discovery.Interface{}, fmt.Errorf("find host veth: list links: %w", err)
	}
	byIndex := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	for _, ip := range ips {
		if l, err := find(ip, links, byIndex); err != nil {
			return discovery.Interface{}, fmt.Errorf("find host veth of %s: %w", ip, err)
		} else if l != nil {
			return discovery.Interface{Name: l.Attrs().Name, Index: l.Attrs().Index}, nil
		}
	}
	return discovery.Interface{}, fmt.Errorf("find host veth of %v: %w", ips, ErrNotFound)
}

// find returns the veth leading to ip, or nil.
func find(ip netip.Addr, links []netlink.Link, byIndex map[int]netlink.Link) (netlink.Link, error) {
	// The route the kernel takes to ip: a veth itself (a /32 route, Calico
	// style), or a bridge whose ports are the candidates.
	var bridge int
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err == nil {
		for _, r := range routes {
			switch l := byIndex[r.LinkIndex].(type) {
			case *netlink.Veth:
				if l.Attrs().NetNsID >= 0 {
					return l, nil
				}
			case *netlink.Bridge:
				bridge = l.Attrs().Index
			}
		}
	}
	// Behind the bridge the route names first; then anywhere (a veth
	// taken off the bridge, a route the CNI has not added yet).
	if bridge != 0 {
		if l, err := inNetns(ip, links, bridge); l != nil || err != nil {
			return l, err
		}
	}
	return inNetns(ip, links, 0)
}

// inNetns returns the veth whose peer's network namespace has ip, among the
// ports of bridge (any veth when bridge is 0), or nil.
func inNetns(ip netip.Addr, links []netlink.Link, bridge int) (netlink.Link, error) {
	// Candidates: veths whose peer is in another namespace, grouped by
	// that namespace.
	byNetns := map[int][]netlink.Link{}
	var order []int
	for _, l := range links {
		a := l.Attrs()
		if _, ok := l.(*netlink.Veth); !ok || a.NetNsID < 0 || a.ParentIndex == 0 {
			continue
		}
		if bridge != 0 && a.MasterIndex != bridge {
			continue
		}
		if _, seen := byNetns[a.NetNsID]; !seen {
			order = append(order, a.NetNsID)
		}
		byNetns[a.NetNsID] = append(byNetns[a.NetNsID], l)
	}
	for _, nsid := range order {
		ifindex, ok, err := addrIndex(nsid, ip)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		veths := byNetns[nsid]
		for _, l := range veths {
			if l.Attrs().ParentIndex == ifindex {
				return l, nil
			}
		}
		// The address is on another interface of the namespace (a
		// loopback /32, say): its only veth to the host leads there.
		if len(veths) == 1 {
			return veths[0], nil
		}
	}
	return nil, nil
}

// Exists reports whether iface is still a veth of that name and index: a
// workload whose addresses did not change keeps its veth while it exists.
func Exists(iface discovery.Interface) bool {
	l, err := netlink.LinkByIndex(iface.Index)
	if err != nil {
		return false
	}
	_, veth := l.(*netlink.Veth)
	return veth && l.Attrs().Name == iface.Name
}
