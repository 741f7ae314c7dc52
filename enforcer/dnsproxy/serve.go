package dnsproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// serveUDP reads datagrams until the socket closes; each is handled in its
// own goroutine (tracked by wg) while MaxInFlight allows.
func (p *Proxy) serveUDP(ctx context.Context, conn *net.UDPConn, wg *sync.WaitGroup) {
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, maxMessage)
	oob := make([]byte, oobSize)
	for {
		n, oobn, _, client, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			p.logErr(err)
			continue
		}
		p.stats.queries.Add(1)
		server, ok := origDst(oob[:oobn])
		if !ok {
			server = local
		}
		q := query{client: client, server: server, proto: protoUDP, msg: append([]byte(nil), buf[:n]...), received: time.Now()}
		select {
		case p.inFlight <- struct{}{}:
		default:
			p.stats.overload.Add(1)
			p.sendUDP(conn, q, overloaded(q.msg))
			continue
		}
		wg.Go(func() {
			defer func() { <-p.inFlight }()
			out := p.handle(ctx, q)
			p.sendUDP(conn, q, out.reply)
			p.finish(q, out)
		})
	}
}

func (p *Proxy) sendUDP(conn *net.UDPConn, q query, reply []byte) {
	if reply == nil {
		return
	}
	if err := replyUDP(conn, p.raw, q.server, q.client, reply); err != nil {
		p.logErr(err)
	}
}

// finish stamps the response record's latency and queues it.
func (p *Proxy) finish(q query, out outcome) {
	if out.response == nil {
		return
	}
	out.response.Time = time.Now()
	out.response.L7.LatencyNs = uint64(out.response.Time.Sub(q.received))
	p.queue(out.response)
}

// overloaded is the SERVFAIL of a query the proxy has no room for.
func overloaded(msg []byte) []byte {
	if len(msg) < headerLen || msg[2]&0x80 != 0 {
		return nil
	}
	id := uint16(msg[0])<<8 | uint16(msg[1])
	return headerReply(id, int(msg[2]>>3&0xf), msg[2]&1 != 0, dns.RcodeServerFailure)
}

// serveTCP accepts connections until the listener closes.
func (p *Proxy) serveTCP(ctx context.Context, ln *net.TCPListener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.logErr(err)
			continue
		}
		select {
		case p.tcpSlots <- struct{}{}:
		default:
			p.stats.overload.Add(1)
			c.Close()
			continue
		}
		if !p.track(c) {
			<-p.tcpSlots
			c.Close()
			return
		}
		wg.Go(func() {
			defer func() { <-p.tcpSlots }()
			defer p.untrack(c)
			p.serveConn(ctx, c)
		})
	}
}

// serveConn answers the queries of one TCP connection in order, until the
// client closes it or is idle for IdleTimeout.
func (p *Proxy) serveConn(ctx context.Context, c net.Conn) {
	client := addrPort(c.RemoteAddr())
	server := addrPort(c.LocalAddr()) // the original destination
	for {
		c.SetReadDeadline(time.Now().Add(p.opts.IdleTimeout))
		msg, err := readTCPMessage(c)
		if err != nil {
			return
		}
		p.stats.queries.Add(1)
		q := query{client: client, server: server, proto: protoTCP, msg: msg, received: time.Now()}
		select {
		case p.inFlight <- struct{}{}:
		default:
			p.stats.overload.Add(1)
			p.writeTCP(c, overloaded(msg))
			continue
		}
		out := p.handle(ctx, q)
		<-p.inFlight
		if out.reply == nil {
			return // not even a header: nothing sensible to answer
		}
		if !p.writeTCP(c, out.reply) {
			return
		}
		p.finish(q, out)
	}
}

func (p *Proxy) writeTCP(c net.Conn, reply []byte) bool {
	if reply == nil {
		return true
	}
	c.SetWriteDeadline(time.Now().Add(p.opts.IdleTimeout))
	return writeTCPMessage(c, reply) == nil
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
