package netlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pingTimeout is how long one echo request waits for its reply.
const pingTimeout = time.Second

// Ping sends count ICMP (or ICMPv6) echo requests from the pod to dst over a
// raw socket, one at a time, and returns how many replies came back. It
// returns an error as well when any reply is missing.
func (p *Pod) Ping(ctx context.Context, dst netip.Addr, count int) (int, error) {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var echoType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() && !dst.Is4In6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		echoType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var conn *icmp.PacketConn
	err := p.Do(func() (err error) {
		conn, err = icmp.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pod %s: ping %s: open raw socket: %w", p.Name, dst, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	id := (os.Getpid() ^ rand.IntN(1<<16)) & 0xffff
	to := &net.IPAddr{IP: dst.AsSlice()}
	received := 0
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		msg := icmp.Message{Type: echoType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("periscope-netlab")}}
		// For ICMPv6 the kernel fills in the checksum.
		b, err := msg.Marshal(nil)
		if err != nil {
			return received, fmt.Errorf("pod %s: ping %s: marshal: %w", p.Name, dst, err)
		}
		if _, err := conn.WriteTo(b, to); err != nil {
			return received, fmt.Errorf("pod %s: ping %s: send: %w", p.Name, dst, ctxOr(ctx, err))
		}
		ok, err := awaitReply(ctx, conn, buf, proto, replyType, id, seq)
		if err != nil {
			return received, fmt.Errorf("pod %s: ping %s: %w", p.Name, dst, err)
		}
		if ok {
			received++
		}
	}
	if received < count {
		return received, fmt.Errorf("pod %s: ping %s: %d of %d replies", p.Name, dst, received, count)
	}
	return received, nil
}

// awaitReply reads until the echo reply with id and seq arrives (true), the
// per-echo timeout passes (false), or ctx ends (error). A raw socket sees
// every ICMP packet of the namespace, so others are skipped.
func awaitReply(ctx context.Context, conn *icmp.PacketConn, buf []byte, proto int, replyType icmp.Type, id, seq int) (bool, error) {
	deadline := time.Now().Add(pingTimeout)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return false, fmt.Errorf("set deadline: %w", err)
	}
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, nil
			}
			return false, fmt.Errorf("receive: %w", err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != replyType {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return true, nil
		}
	}
}

// ctxOr prefers the context's error, which says why an I/O call failed.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
