package dnsproxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// transparentControl sets the socket options of a transparent listener:
// IP_TRANSPARENT (accept traffic for addresses that are not the host's,
// and send from them) and, for UDP, IP_RECVORIGDSTADDR (learn the address
// a datagram was sent to) and IP_PKTINFO (reply from it).
func transparentControl(v6, udp bool) func(network, address string, rc syscall.RawConn) error {
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			set := func(level, opt int, name string) {
				if serr == nil {
					if err := unix.SetsockoptInt(int(fd), level, opt, 1); err != nil {
						serr = fmt.Errorf("set %s on %s %s: %w", name, network, address, err)
					}
				}
			}
			set(unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR")
			if v6 {
				set(unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT")
				if udp {
					set(unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, "IPV6_RECVORIGDSTADDR")
					set(unix.SOL_IPV6, unix.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO")
				}
				return
			}
			set(unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT")
			if udp {
				set(unix.SOL_IP, unix.IP_RECVORIGDSTADDR, "IP_RECVORIGDSTADDR")
				set(unix.SOL_IP, unix.IP_PKTINFO, "IP_PKTINFO")
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// listenPair binds a transparent UDP socket and a transparent TCP listener
// on the same address and port (a free one when addr's port is 0).
func listenPair(ctx context.Context, addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	v6 := addr.Addr().Is6() && !addr.Addr().Is4In6()
	udpNet, tcpNet := "udp4", "tcp4"
	if v6 {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	var lastErr error
	for range 8 { // port 0: the UDP port may be taken for TCP; try again
		lc := net.ListenConfig{Control: transparentControl(v6, true)}
		pc, err := lc.ListenPacket(ctx, udpNet, addr.String())
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		udp := pc.(*net.UDPConn)
		port := udp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		lc = net.ListenConfig{Control: transparentControl(v6, false)}
		ln, err := lc.Listen(ctx, tcpNet, netip.AddrPortFrom(addr.Addr(), port).String())
		if err == nil {
			return udp, ln.(*net.TCPListener), nil
		}
		udp.Close()
		lastErr = err
		if addr.Port() != 0 {
			break
		}
	}
	return nil, nil, fmt.Errorf("listen tcp %s: %w", addr, lastErr)
}

// origDst returns the original destination a datagram was sent to, from
// the control messages of IP_RECVORIGDSTADDR (sockaddr_in or
// sockaddr_in6).
func origDst(oob []byte) (netip.AddrPort, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range msgs {
		d := m.Data
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR && len(d) >= 8:
			a := netip.AddrFrom4([4]byte(d[4:8]))
			return netip.AddrPortFrom(a, binary.BigEndian.Uint16(d[2:4])), true
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR && len(d) >= 24:
			a := netip.AddrFrom16([16]byte(d[8:24]))
			return netip.AddrPortFrom(a, binary.BigEndian.Uint16(d[2:4])), true
		}
	}
	return netip.AddrPort{}, false
}

// oobSize holds the control messages a transparent UDP socket receives.
const oobSize = 256

// replyUDP sends b to client from the address the client sent its query
// to. A reply from the listener's own port goes out of the listener with
// that source address (IP_PKTINFO); one from another port (a query
// redirected to port 53) goes out of a raw socket.
func replyUDP(conn *net.UDPConn, raw *rawReplier, from, client netip.AddrPort, b []byte) error {
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if from.Port() == local.Port() {
		var oob []byte
		if from.Addr().Is4() || from.Addr().Is4In6() {
			oob = (&ipv4.ControlMessage{Src: from.Addr().Unmap().AsSlice()}).Marshal()
		} else {
			oob = (&ipv6.ControlMessage{Src: from.Addr().AsSlice()}).Marshal()
		}
		_, _, err := conn.WriteMsgUDPAddrPort(b, oob, client)
		return err
	}
	if err := raw.send(from, client, b); err != nil {
		return fmt.Errorf("reply from %s to %s: %w", from, client, err)
	}
	return nil
}
