package dnsproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// batchReader reads many datagrams in one system call (recvmmsg);
// ipv4.PacketConn and ipv6.PacketConn satisfy it.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// Batch sizes of a UDP listener's reads.
const (
	// listenBatch is how many queries one recvmmsg reads at most.
	listenBatch = 16
	// queryBufSize is the largest UDP query read; a longer datagram is
	// cut (MSG_TRUNC) and answered FORMERR. A query is one question and
	// an EDNS0 record: a few hundred bytes.
	queryBufSize = 4096
)

// serveUDP reads datagrams, in batches (recvmmsg), until the socket
// closes, and starts each query in this goroutine: a forwarded one goes
// out over the shared upstream sockets (udpExchanges), whose readers
// finish it.
func (p *Proxy) serveUDP(conn *net.UDPConn) {
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	var r batchReader = ipv4.NewPacketConn(conn)
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		r = ipv6.NewPacketConn(conn)
	}
	msgs := make([]ipv4.Message, listenBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, queryBufSize)}
		msgs[i].OOB = make([]byte, oobSize)
	}
	for {
		n, err := r.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.isClosed() {
				return
			}
			p.logErr(err)
			continue
		}
		for i := range msgs[:n] {
			p.serveDatagram(conn, local, &msgs[i])
		}
	}
}

// serveDatagram starts one query of a batch read: answered at once
// (malformed, denied, over MaxInFlight), or forwarded upstream with its
// MaxInFlight slot, which answerUDP releases.
func (p *Proxy) serveDatagram(conn *net.UDPConn, local netip.AddrPort, m *ipv4.Message) {
	p.stats.queries.Add(1)
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return
	}
	client := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
	server, ok := origDst(m.OOB[:m.NN])
	if !ok {
		server = local
	}
	q := query{client: client, server: server, proto: protoUDP, msg: append([]byte(nil), m.Buffers[0][:m.N]...), received: time.Now()}
	if m.Flags&unix.MSG_TRUNC != 0 {
		p.stats.malformed.Add(1)
		p.sendUDP(conn, q, formErr(q.msg))
		return
	}
	select {
	case p.inFlight <- struct{}{}:
	default:
		p.stats.overload.Add(1)
		p.sendUDP(conn, q, overloaded(q.msg))
		return
	}
	out, fw := p.open(q)
	if fw == nil {
		<-p.inFlight
		p.sendUDP(conn, q, out.reply)
		return
	}
	e := &udpExchange{sent: q.msg}
	e.done = func(answer []byte, err error) {
		fw.forwarded, fw.answered = e.forwarded, e.answered
		p.answerUDP(conn, fw, answer, err)
	}
	p.udpUp.send(fw.from(p.opts.FromClient), q.server, e)
}

// answerUDP finishes a forwarded UDP query in the goroutine that got its
// answer (or error): the answer is released once the cache admitted its
// addresses, at once when they are admitted already; when the admission
// has to wait (a policy recompile), it waits in a goroutine of its own,
// so the socket's other answers do not wait behind it.
func (p *Proxy) answerUDP(conn *net.UDPConn, fw *forward, answer []byte, err error) {
	out, ans := p.settle(fw, answer, err)
	if ans != nil {
		if qc, ok := p.opts.Cache.(QuickCache); ok {
			recorded, err := qc.TryRecord(*ans)
			switch {
			case err != nil:
				out, ans = p.fail(fw, err), nil
			case recorded:
				ans = nil
			}
		}
	}
	if ans != nil {
		out.reply = append([]byte(nil), out.reply...) // answer is the reader's buffer
		p.udpUp.spawn(func() { p.releaseUDP(conn, fw, p.admit(fw, out, ans)) })
		return
	}
	p.releaseUDP(conn, fw, out)
}

// releaseUDP sends a forwarded query's reply, counts the proxy's own
// time of an answered one, queues its response record and frees its
// MaxInFlight slot.
func (p *Proxy) releaseUDP(conn *net.UDPConn, fw *forward, out outcome) {
	if !fw.answered.IsZero() && out.reply != nil {
		p.ownTimes.observe(fw.forwarded.Sub(fw.q.received) + time.Since(fw.answered))
	}
	p.sendUDP(conn, fw.q, out.reply)
	p.finish(fw.q, out)
	<-p.inFlight
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
		if !p.extendIdle(c) {
			return
		}
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
		if !out.answered.IsZero() {
			p.ownTimes.observe(out.held + time.Since(out.answered))
		}
		if !p.writeTCP(c, out.reply) {
			return
		}
		p.finish(q, out)
	}
}

// extendIdle gives c IdleTimeout to send its next query, unless the proxy
// stopped listening: under p.mu, so that it never undoes the deadline in
// the past stopListening gave c.
func (p *Proxy) extendIdle(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	c.SetReadDeadline(time.Now().Add(p.opts.IdleTimeout))
	return true
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
