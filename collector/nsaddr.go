package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/periscope-dev/periscope/discovery/nldump"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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
	// The kernel reads attributes of a dump request only from a socket with
	// strict checking on; elsewhere it ignores the target and dumps the
	// caller's own namespace.
	s, err := nl.Subscribe(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink socket: %w", err)
	}
	sh := &nl.SocketHandle{Socket: s}
	defer sh.Close()
	if err := unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return nil, nil, fmt.Errorf("netlink strict checking: %w", err)
	}
	if err := s.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		return nil, nil, fmt.Errorf("netlink receive timeout: %w", err)
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sh}
	req.AddData(nl.NewIfAddrmsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	msgs, err := nldump.Retry(func() ([][]byte, error) { return req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR) })
	if err != nil {
		return nil, nil, fmt.Errorf("dump addresses of netns id %d: %w", nsid, err)
	}
	for _, m := range msgs {
		ip, ok, err := parseNetnsAddr(m, nsid, ifindex)
		if err != nil {
			return nil, nil, fmt.Errorf("dump addresses of netns id %d: %w", nsid, err)
		}
		switch {
		case !ok:
		case ip.IsLinkLocalUnicast():
			linkLocal = append(linkLocal, ip)
		default:
			global = append(global, ip)
		}
	}
	return global, linkLocal, nil
}

// parseNetnsAddr decodes one RTM_NEWADDR message of a dump targeted at nsid
// and says whether its address belongs to the endpoint: a global or a
// link-local unicast address on ifindex (any when 0).
func parseNetnsAddr(m []byte, nsid, ifindex int) (netip.Addr, bool, error) {
	if len(m) < unix.SizeofIfAddrmsg {
		return netip.Addr{}, false, fmt.Errorf("short RTM_NEWADDR message (%d bytes)", len(m))
	}
	msg := nl.DeserializeIfAddrmsg(m)
	attrs, err := nl.ParseRouteAttr(m[msg.Len():])
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("parse RTM_NEWADDR attributes: %w", err)
	}
	var local, address []byte
	targeted := false
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFA_LOCAL:
			local = a.Value
		case unix.IFA_ADDRESS:
			address = a.Value
		case unix.IFA_TARGET_NETNSID:
			targeted = len(a.Value) >= 4 && int(int32(nl.NativeEndian().Uint32(a.Value))) == nsid
		}
	}
	// A kernel that ignored the target would answer with the host's own
	// addresses; replies about the target namespace echo its id.
	if !targeted {
		return netip.Addr{}, false, errors.New("reply not about the target netns (kernel without IFA_TARGET_NETNSID, 4.20+)")
	}
	if ifindex != 0 && int(msg.Index) != ifindex {
		return netip.Addr{}, false, nil
	}
	if msg.Scope != unix.RT_SCOPE_UNIVERSE && msg.Scope != unix.RT_SCOPE_LINK {
		return netip.Addr{}, false, nil
	}
	// On point-to-point links IFA_ADDRESS is the peer's; IFA_LOCAL is ours.
	raw := local
	if raw == nil {
		raw = address
	}
	ip, ok := netip.AddrFromSlice(raw)
	if !ok {
		return netip.Addr{}, false, nil
	}
	ip = ip.Unmap()
	if ip.IsLoopback() || msg.Scope == unix.RT_SCOPE_LINK && !ip.IsLinkLocalUnicast() {
		return netip.Addr{}, false, nil
	}
	return ip, true, nil
}
