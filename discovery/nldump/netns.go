package nldump

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NetnsAddr is one address of another network namespace.
type NetnsAddr struct {
	IP    netip.Addr // IPv4 addresses unmapped
	Index int        // the interface's index in that namespace
	Scope uint8      // unix.RT_SCOPE_*
}

// NetnsAddrs dumps the addresses of family (unix.AF_INET, AF_INET6 or
// AF_UNSPEC for both) of the network namespace with host netns id nsid,
// from the host namespace: the kernel (4.20+) dumps another namespace's
// addresses when asked with IFA_TARGET_NETNSID on a socket with strict
// checking, which needs no setns (and so no CAP_SYS_ADMIN). An interrupted
// dump is read again, as Retry does.
func NetnsAddrs(nsid, family int) ([]NetnsAddr, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	sh := &nl.SocketHandle{Socket: s}
	defer sh.Close()
	// Without strict checking the kernel ignores a dump request's
	// attributes and dumps the caller's own namespace.
	if err := unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return nil, fmt.Errorf("netlink strict checking: %w", err)
	}
	if err := s.SetReceiveTimeout(&nl.SocketTimeoutTv); err != nil {
		return nil, fmt.Errorf("netlink receive timeout: %w", err)
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sh}
	req.AddData(nl.NewIfAddrmsg(family))
	req.AddData(nl.NewRtAttr(unix.IFA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	msgs, err := Retry(func() ([][]byte, error) { return req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR) })
	if err != nil {
		return nil, fmt.Errorf("dump addresses of netns id %d: %w", nsid, err)
	}
	addrs := make([]NetnsAddr, 0, len(msgs))
	for _, m := range msgs {
		a, ok, err := parseNetnsAddr(m, nsid)
		if err != nil {
			return nil, fmt.Errorf("dump addresses of netns id %d: %w", nsid, err)
		}
		if ok {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// parseNetnsAddr decodes one RTM_NEWADDR message of a dump targeted at
// nsid; ok is false for a message without a usable address.
func parseNetnsAddr(m []byte, nsid int) (a NetnsAddr, ok bool, err error) {
	if len(m) < unix.SizeofIfAddrmsg {
		return a, false, fmt.Errorf("short RTM_NEWADDR message (%d bytes)", len(m))
	}
	msg := nl.DeserializeIfAddrmsg(m)
	attrs, err := nl.ParseRouteAttr(m[msg.Len():])
	if err != nil {
		return a, false, fmt.Errorf("parse RTM_NEWADDR attributes: %w", err)
	}
	var local, address []byte
	targeted := false
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.IFA_LOCAL:
			local = at.Value
		case unix.IFA_ADDRESS:
			address = at.Value
		case unix.IFA_TARGET_NETNSID:
			targeted = len(at.Value) >= 4 && int(int32(nl.NativeEndian().Uint32(at.Value))) == nsid
		}
	}
	// A kernel that ignored the target would answer with the host's own
	// addresses; its replies about the target echo the id.
	if !targeted {
		return a, false, errors.New("reply not about the target netns (kernel without IFA_TARGET_NETNSID, 4.20+)")
	}
	// On point-to-point links IFA_ADDRESS is the peer's; IFA_LOCAL is ours.
	raw := local
	if raw == nil {
		raw = address
	}
	ip, ok := netip.AddrFromSlice(raw)
	if !ok {
		return a, false, nil
	}
	return NetnsAddr{IP: ip.Unmap(), Index: int(msg.Index), Scope: msg.Scope}, true, nil
}
