package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/periscope-dev/periscope/discovery/nldump"
	"github.com/vishvananda/netlink"
)

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/var/run/netns"

// Resolve looks the configured endpoints up in the kernel: the host-side veth
// of each (by name, or as the host peer of the veth inside its netns), its
// addresses (declared, or read from inside its netns), the host interfaces and
// the host's own addresses. The node name defaults to the hostname. A netns is
// only ever looked at from the host namespace, so CAP_NET_ADMIN is enough.
func Resolve(cfg *Config) (*Topology, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Topology{NodeName: cfg.NodeName, ClusterName: cfg.ClusterName, NodeLabels: cfg.NodeLabels}
	for _, s := range cfg.RemoteNodes {
		p, _ := parsePrefix(s) // validated
		t.RemoteNodes = append(t.RemoteNodes, p)
	}
	for ns, nc := range cfg.Namespaces {
		if t.NamespaceLabels == nil {
			t.NamespaceLabels = map[string]map[string]string{}
		}
		t.NamespaceLabels[ns] = nc.Labels
	}
	if t.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node name: %w", err)
		}
		t.NodeName = h
	}
	for _, ep := range cfg.Endpoints {
		re, err := resolveEndpoint(ep)
		if err != nil {
			return nil, fmt.Errorf("resolve endpoint %s/%s: %w", ep.namespace(), ep.Name, err)
		}
		t.Endpoints = append(t.Endpoints, re)
	}
	for _, name := range cfg.HostInterfaces {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("resolve host interface %s: %w", name, err)
		}
		t.HostInterfaces = append(t.HostInterfaces, HostInterface{Index: uint32(l.Attrs().Index), Name: name})
	}
	addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			t.HostAddrs = append(t.HostAddrs, ip.Unmap())
		}
	}
	return t, nil
}

func resolveEndpoint(ep EndpointConfig) (ResolvedEndpoint, error) {
	re := ResolvedEndpoint{Config: ep}
	for _, s := range ep.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return re, fmt.Errorf("bad IP %q: %w", s, err)
		}
		re.IPs = append(re.IPs, ip.Unmap())
	}
	if ep.Interface != "" {
		l, err := netlink.LinkByName(ep.Interface)
		if err != nil {
			return re, fmt.Errorf("host interface %s: %w", ep.Interface, err)
		}
		if err := endpointInterface(l); err != nil {
			return re, err
		}
		re.HostIfIndex = uint32(l.Attrs().Index)
		re.HostIfName = ep.Interface
	}
	if ep.NetNS == "" {
		return re, nil
	}
	// Opening a namespace file read-only needs no capability, unlike
	// entering it; see nsaddr.go.
	ns, err := os.Open(NetNSPath(ep.NetNS))
	if err != nil {
		return re, fmt.Errorf("open netns %s: %w", ep.NetNS, err)
	}
	defer ns.Close()
	nsid, err := netnsID(ns)
	if err != nil {
		return re, fmt.Errorf("netns %s: %w", ep.NetNS, err)
	}
	veths, err := hostVethsInto(nsid)
	if err != nil {
		return re, fmt.Errorf("netns %s: %w", ep.NetNS, err)
	}
	// peerIndex is the ifindex, inside the netns, of the host veth's peer;
	// 0 when the declared interface is not a veth into this netns.
	var peerIndex int
	if ep.Interface == "" {
		host, err := soleVeth(veths)
		if err != nil {
			return re, fmt.Errorf("netns %s: %w", ep.NetNS, err)
		}
		re.HostIfIndex = uint32(host.Attrs().Index)
		re.HostIfName = host.Attrs().Name
		peerIndex = host.Attrs().ParentIndex
	} else {
		for _, l := range veths {
			if uint32(l.Attrs().Index) == re.HostIfIndex {
				peerIndex = l.Attrs().ParentIndex
			}
		}
	}
	if peerIndex == 0 && len(re.IPs) > 0 {
		return re, nil
	}
	global, linkLocal, err := netnsAddrs(nsid, peerIndex)
	if err != nil {
		return re, fmt.Errorf("netns %s: %w", ep.NetNS, err)
	}
	if len(re.IPs) == 0 {
		re.IPs = global
	}
	if peerIndex != 0 {
		// The pod's own side of the veth: its neighbour discovery and
		// other link-local traffic is the pod's.
		re.LinkLocal = linkLocal
	}
	return re, nil
}

// endpointInterface checks that a declared interface can be an endpoint's:
// the host end of a veth pair (never lo, a bridge or a physical device,
// which would put the endpoint's programs and policy on the host's own
// traffic).
func endpointInterface(l netlink.Link) error {
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("host interface %s is a %s, not a veth: an endpoint's interface is the host end of its veth pair (host interfaces go in host_interfaces)",
			l.Attrs().Name, l.Type())
	}
	return nil
}

// soleVeth picks the endpoint's host-side veth among the host veths whose
// peer is in its netns; several mean the config must say which.
func soleVeth(veths []netlink.Link) (netlink.Link, error) {
	switch len(veths) {
	case 0:
		return nil, errors.New("no veth with a peer in the host namespace (declare interface:)")
	case 1:
		return veths[0], nil
	}
	names := make([]string, len(veths))
	for i, l := range veths {
		names[i] = l.Attrs().Name
	}
	return nil, fmt.Errorf("several veths with host peers (%s): declare interface:", strings.Join(names, ", "))
}

// NetNSPath turns a netns given as a name into its path under /var/run/netns;
// anything with a slash is already a path.
func NetNSPath(netnsRef string) string {
	if strings.ContainsRune(netnsRef, '/') {
		return netnsRef
	}
	return filepath.Join(netnsDir, netnsRef)
}
