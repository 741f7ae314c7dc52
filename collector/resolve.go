package collector

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/var/run/netns"

// Resolve looks the configured endpoints up in the kernel: the host-side veth
// of each (by name, or as the host peer of the veth inside its netns), its
// addresses (declared, or read from inside its netns), the host interfaces and
// the host's own addresses. The node name defaults to the hostname.
func Resolve(cfg *Config) (*Topology, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Topology{NodeName: cfg.NodeName}
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
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
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
		re.HostIfIndex = uint32(l.Attrs().Index)
		re.HostIfName = ep.Interface
	}
	if ep.NetNS == "" {
		return re, nil
	}
	ns, err := netns.GetFromPath(NetNSPath(ep.NetNS))
	if err != nil {
		return re, fmt.Errorf("open netns %s: %w", ep.NetNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return re, fmt.Errorf("netlink handle in netns %s: %w", ep.NetNS, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return re, fmt.Errorf("list links in netns %s: %w", ep.NetNS, err)
	}
	if ep.Interface == "" {
		host, err := hostPeer(links)
		if err != nil {
			return re, fmt.Errorf("netns %s: %w", ep.NetNS, err)
		}
		re.HostIfIndex = uint32(host.Attrs().Index)
		re.HostIfName = host.Attrs().Name
	}
	if len(re.IPs) == 0 {
		for _, l := range links {
			if l.Attrs().Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
			if err != nil {
				return re, fmt.Errorf("list addresses of %s in netns %s: %w", l.Attrs().Name, ep.NetNS, err)
			}
			for _, a := range addrs {
				ip, ok := netip.AddrFromSlice(a.IP)
				if !ok || ip.IsLinkLocalUnicast() || ip.IsLoopback() {
					continue
				}
				re.IPs = append(re.IPs, ip.Unmap())
			}
		}
	}
	return re, nil
}

// hostPeer finds, among the links inside an endpoint's netns, the veth whose
// peer lives in the host namespace, and returns that host-side peer: the peer
// must be a host veth whose own peer index points back.
func hostPeer(nsLinks []netlink.Link) (netlink.Link, error) {
	var found []netlink.Link
	for _, l := range nsLinks {
		if _, ok := l.(*netlink.Veth); !ok || l.Attrs().ParentIndex == 0 {
			continue
		}
		peer, err := netlink.LinkByIndex(l.Attrs().ParentIndex)
		if err != nil {
			continue // peer is in another namespace
		}
		if _, ok := peer.(*netlink.Veth); !ok || peer.Attrs().ParentIndex != l.Attrs().Index {
			continue
		}
		found = append(found, peer)
	}
	switch len(found) {
	case 0:
		return nil, errors.New("no veth with a peer in the host namespace (declare interface:)")
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, l := range found {
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
