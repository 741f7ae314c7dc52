package netlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ListenTCP listens on port on all of the pod's addresses, IPv4 and IPv6
// (port 0 picks one). The listener stays in the pod's namespace.
func (p *Pod) ListenTCP(port uint16) (net.Listener, error) {
	var ln net.Listener
	err := p.Do(func() (err error) {
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(int(port)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s: listen tcp :%d: %w", p.Name, port, err)
	}
	return ln, nil
}

// DialTCP connects from the pod to addr.
func (p *Pod) DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var conn net.Conn
	err := p.Do(func() (err error) {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s: dial tcp %s: %w", p.Name, addr, err)
	}
	return conn, nil
}

// ListenUDP binds port on all of the pod's addresses, IPv4 and IPv6
// (port 0 picks one).
func (p *Pod) ListenUDP(port uint16) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := p.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{Port: int(port)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s: listen udp :%d: %w", p.Name, port, err)
	}
	return conn, nil
}

// DialUDP opens a UDP socket in the pod connected to addr.
func (p *Pod) DialUDP(ctx context.Context, addr netip.AddrPort) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := p.Do(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		conn = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s: dial udp %s: %w", p.Name, addr, err)
	}
	return conn, nil
}

// Resolve asks the DNS server at server, from the pod, for name's first
// IPv4 address (IPv6 with v6), as a stub resolver does (UDP, TCP when the
// answer is truncated).
func (p *Pod) Resolve(ctx context.Context, server netip.AddrPort, name string, v6 bool) (netip.Addr, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if network == "tcp" || network == "tcp4" || network == "tcp6" {
			return p.DialTCP(ctx, server)
		}
		return p.DialUDP(ctx, server)
	}}
	family := "ip4"
	if v6 {
		family = "ip6"
	}
	addrs, err := r.LookupNetIP(ctx, family, name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("pod %s: resolve %s at %s: %w", p.Name, name, server, err)
	}
	return addrs[0].Unmap(), nil
}
