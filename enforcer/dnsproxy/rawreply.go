package dnsproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// rawReplier sends UDP datagrams from any address and port through
// send-only raw sockets (IPPROTO_RAW: the packet carries its own IP header
// and such a socket receives nothing): how a transparent proxy answers a
// query redirected to port 53 from that server's address and port with
// one system call. Without CAP_NET_RAW (a collector with only CAP_BPF,
// CAP_NET_ADMIN and CAP_PERFMON) it sends each reply from a transparent
// socket bound to that address and port instead (IP_TRANSPARENT needs
// CAP_NET_ADMIN only): five more system calls per reply.
type rawReplier struct {
	fd4, fd6    int
	transparent bool // no raw sockets: sendFrom
}

func newRawReplier() (*rawReplier, error) {
	fd4, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return &rawReplier{fd4: -1, fd6: -1, transparent: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raw IPv4 reply socket: %w", err)
	}
	fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		unix.Close(fd4)
		return nil, fmt.Errorf("raw IPv6 reply socket: %w", err)
	}
	return &rawReplier{fd4: fd4, fd6: fd6}, nil
}

func (r *rawReplier) Close() {
	if r.transparent {
		return
	}
	unix.Close(r.fd4)
	unix.Close(r.fd6)
}

// send sends payload in a UDP datagram from src to dst.
func (r *rawReplier) send(src, dst netip.AddrPort, payload []byte) error {
	if r.transparent {
		return sendFrom(src, dst, payload)
	}
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() != d.Is4() {
		return fmt.Errorf("reply from %s to %s: address families differ", src, dst)
	}
	if s.Is4() {
		pkt := make([]byte, 20+8+len(payload))
		ip := pkt[:20]
		ip[0] = 0x45 // version 4, 5 words of header
		binary.BigEndian.PutUint16(ip[2:], uint16(len(pkt)))
		ip[6] = 0x40 // don't fragment
		ip[8] = 64   // TTL
		ip[9] = unix.IPPROTO_UDP
		s4, d4 := s.As4(), d.As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		// The kernel fills the header checksum and ID of an IP_HDRINCL packet.
		putUDP(pkt[20:], s4[:], d4[:], src.Port(), dst.Port(), payload)
		return unix.Sendto(r.fd4, pkt, 0, &unix.SockaddrInet4{Addr: d4})
	}
	pkt := make([]byte, 40+8+len(payload))
	ip := pkt[:40]
	ip[0] = 0x60 // version 6
	binary.BigEndian.PutUint16(ip[4:], uint16(8+len(payload)))
	ip[6] = unix.IPPROTO_UDP
	ip[7] = 64 // hop limit
	s16, d16 := s.As16(), d.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	putUDP(pkt[40:], s16[:], d16[:], src.Port(), dst.Port(), payload)
	return unix.Sendto(r.fd6, pkt, 0, &unix.SockaddrInet6{Addr: d16})
}

// putUDP writes a UDP header and payload into b, with the checksum over
// the pseudo-header of src and dst (mandatory for IPv6).
func putUDP(b, src, dst []byte, sport, dport uint16, payload []byte) {
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	copy(b[8:], payload)
	sum := uint32(0)
	sum = addWords(sum, src)
	sum = addWords(sum, dst)
	sum += uint32(unix.IPPROTO_UDP) + uint32(8+len(payload))
	sum = addWords(sum, b[:8+len(payload)])
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff // 0 means "no checksum"
	}
	binary.BigEndian.PutUint16(b[6:], c)
}

func addWords(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// sendFrom sends one datagram from a foreign address and port, through a
// transparent socket bound to it for the one send.
func sendFrom(from, to netip.AddrPort, b []byte) error {
	v4 := from.Addr().Is4() || from.Addr().Is4In6()
	family, level, opt := unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_TRANSPARENT
	if v4 {
		family, level, opt = unix.AF_INET, unix.SOL_IP, unix.IP_TRANSPARENT
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reply socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("reply socket SO_REUSEADDR: %w", err)
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return fmt.Errorf("reply socket transparent: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(from, v4)); err != nil {
		return fmt.Errorf("bind reply socket to %s: %w", from, err)
	}
	if err := unix.Sendto(fd, b, 0, sockaddr(to, v4)); err != nil {
		return fmt.Errorf("reply from %s to %s: %w", from, to, err)
	}
	return nil
}

func sockaddr(a netip.AddrPort, v4 bool) unix.Sockaddr {
	if v4 {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}
