package hostveth

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// addrIndex says whether the network namespace with host netns id nsid has
// address ip, and on which of its interfaces. The kernel (4.20+) dumps
// another namespace's addresses when asked with IFA_TARGET_NETNSID on a
// socket with strict checking, which needs no setns.
func addrIndex(nsid int, ip netip.Addr) (int, bool, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE)
	if err != nil {
		return 0, false, fmt.Errorf("open netlink socket: %w", err)
	}
	sh := &nl.SocketHandle{Socket: s}
	defer sh.Close()
	if err := unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return 0, false, fmt.Errorf("netlink strict checking: %w", err)
	}
	if err := s.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		return 0, false, fmt.Errorf("netlink receive timeout: %w", err)
	}
	family := unix.AF_INET
	if ip.Is6() && !ip.Is4In6() {
		family = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sh}
	req.AddData(nl.NewIfAddrmsg(family))
	req.AddData(nl.NewRtAttr(unix.IFA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
	if err != nil {
		return 0, false, fmt.Errorf("dump addresses of netns id %d: %w", nsid, err)
	}
	want := ip.Unmap()
	for _, m := range msgs {
		got, ifindex, err := parseAddr(m, nsid)
		if err != nil {
			return 0, false, fmt.Errorf("dump addresses of netns id %d: %w", nsid, err)
		}
		if got == want {
			return ifindex, true, nil
		}
	}
	return 0, false, nil
}

// parseAddr decodes one RTM_NEWADDR message of a dump targeted at nsid.
func parseAddr(m []byte, nsid int) (netip.Addr, int, error) {
	if len(m) < unix.SizeofIfAddrmsg {
		return netip.Addr{}, 0, fmt.Errorf("short RTM_NEWADDR message (%d bytes)", len(m))
	}
	msg := nl.DeserializeIfAddrmsg(m)
	attrs, err := nl.ParseRouteAttr(m[msg.Len():])
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("parse RTM_NEWADDR attributes: %w", err)
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
	// addresses; its replies about the target echo the id.
	if !targeted {
		return netip.Addr{}, 0, errors.New("reply not about the target netns (kernel without IFA_TARGET_NETNSID, 4.20+)")
	}
	// On point-to-point links IFA_ADDRESS is the peer's; IFA_LOCAL is ours.
	raw := local
	if raw == nil {
		raw = address
	}
	ip, _ := netip.AddrFromSlice(raw)
	return ip.Unmap(), int(msg.Index), nil
}
