package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/periscope-dev/periscope/discovery/nldump"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// An endpoint's netns is inspected from the host namespace, never by
// entering it: setns(CLONE_NEWNET) needs CAP_SYS_ADMIN, which the collector
// does not hold. The host names the pod's namespace by a netns id; its veths
// carry that id, and an address dump can target it (IFA_TARGET_NETNSID).

// netnsID returns the host namespace's id for the network namespace open as
// f, assigning one when it has none (which needs CAP_NET_ADMIN only).
func netnsID(f *os.File) (int, error) {
	fd := int(f.Fd())
	id, err := netlink.GetNetNsIdByFd(fd)
	if err != nil {
		return 0, fmt.Errorf("get netns id: %w", err)
	}
	if id >= 0 {
		return id, nil
	}
	// -1 asks the kernel to pick a free id; EEXIST means someone else
	// assigned one meanwhile, which is as good.
	if err := netlink.SetNetNsIdByFd(fd, -1); err != nil && !errors.Is(err, unix.EEXIST) {
		return 0, fmt.Errorf("assign netns id: %w", err)
	}
	if id, err = netlink.GetNetNsIdByFd(fd); err != nil {
		return 0, fmt.Errorf("get netns id: %w", err)
	}
	if id < 0 {
		return 0, errors.New("netns has no id after assigning one")
	}
	return id, nil
}

// hostVethsInto lists the host veths whose peer lives in the namespace with
// host netns id nsid; a veth's ParentIndex is its peer's ifindex there.
func hostVethsInto(nsid int) ([]netlink.Link, error) {
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list host links: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		if a := l.Attrs(); a.NetNsID == nsid && a.ParentIndex != 0 {
			out = append(out, l)
		}
	}
	return out, nil
}

// netnsAddrs dumps the unicast addresses of the namespace with host netns
// id nsid, on interface ifindex there, or on any interface when ifindex is
// 0: the global ones, and apart the link-local ones. Loopback addresses are
// left out.
func netnsAddrs(nsid, ifindex int) (global, linkLocal []netip.Addr, err error) {
	addrs, err := nldump.NetnsAddrs(nsid, unix.AF_UNSPEC)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range addrs {
		if ifindex != 0 && a.Index != ifindex || a.IP.IsLoopback() {
			continue
		}
		switch {
		case a.Scope != unix.RT_SCOPE_UNIVERSE && a.Scope != unix.RT_SCOPE_LINK:
		case a.IP.IsLinkLocalUnicast():
			linkLocal = append(linkLocal, a.IP)
		case a.Scope == unix.RT_SCOPE_UNIVERSE:
			global = append(global, a.IP)
		}
	}
	return global, linkLocal, nil
}
