package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds and pace of the shared upstream UDP sockets.
const (
	// upstreamIdle closes a socket that has had no query for that long.
	upstreamIdle = 10 * time.Second
	// maxSockets is how many sockets make open close the idle ones (those
	// with no exchange waiting) at once; the others are bounded by
	// MaxInFlight.
	maxSockets = 1024
	// minSweep and maxSweep bound how often expired exchanges are failed
	// (a tenth of the timeout between them).
	minSweep = 10 * time.Millisecond
	maxSweep = 250 * time.Millisecond
)

// errShutdown is an exchange cut short because the proxy stops.
var errShutdown = errors.New("the proxy is shutting down")

// udpExchange is one UDP query sent upstream and waiting for its answer.
type udpExchange struct {
	id       uint16 // the client's ID (the query goes upstream under another)
	sent     []byte // the query as sent
	deadline time.Time
	// forwarded is when send began to send it upstream, answered when its
	// answer was read (zero: none), for the proxy's own time (ownTimes);
	// done's caller may read them.
	forwarded, answered time.Time
	// done gets the answer (under the client's ID again; valid only during
	// the call) or the error, exactly once, from the socket's reader, the
	// sweeper or the shutdown.
	done func(answer []byte, err error)
}

// udpExchanges forward UDP queries over shared connected sockets, one per
// (source, server), each query under a fresh random ID (math/rand/v2:
// ChaCha8, seeded by the runtime; the source port stays the socket's, as
// it did for the pooled sockets before; an answer must match the ID and
// repeat the question). Each socket has one reader, which hands every answer to its
// exchange's done in the same goroutine: no goroutine per query and no
// hand-off between reading an answer and acting on it. A sweeper fails
// the exchanges past their deadline and closes idle sockets.
type udpExchanges struct {
	mark    uint32 // SO_MARK of every socket; 0: none
	timeout time.Duration
	// route maps a server to the address actually asked (tests: a local
	// server in place of the original destination); nil: the server.
	route func(netip.AddrPort) netip.AddrPort

	mu      sync.Mutex
	sockets map[upstreamKey]*upstreamSocket
	closed  bool
	wg      sync.WaitGroup // readers, the sweeper and spawned admissions
	stop    chan struct{}
}

// upstreamSocket is one shared socket and its exchanges waiting; mu of
// udpExchanges guards pending and lastUsed.
type upstreamSocket struct {
	key      upstreamKey
	conn     *net.UDPConn
	pending  map[uint16]*udpExchange
	lastUsed time.Time
}

func newUDPExchanges(mark uint32, timeout time.Duration) *udpExchanges {
	x := &udpExchanges{mark: mark, timeout: timeout, sockets: make(map[upstreamKey]*upstreamSocket), stop: make(chan struct{})}
	x.wg.Go(x.sweep)
	return x
}

// send forwards e.sent to server from the address from (zero: the
// host's), rewriting its ID; e.done gets the outcome (at once when the
// send fails).
func (x *udpExchanges) send(from netip.Addr, server netip.AddrPort, e *udpExchange) {
	if x.route != nil {
		server = x.route(server)
	}
	k := upstreamKey{from, server}
	now := time.Now()
	e.deadline, e.forwarded = now.Add(x.timeout), now
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		e.done(nil, errShutdown)
		return
	}
	s := x.sockets[k]
	if s == nil {
		var err error
		if s, err = x.open(k); err != nil {
			x.mu.Unlock()
			e.done(nil, fmt.Errorf("udp %s: %w", server, err))
			return
		}
	}
	id := uint16(rand.Uint32())
	for s.pending[id] != nil {
		id = uint16(rand.Uint32())
	}
	e.id = uint16(e.sent[0])<<8 | uint16(e.sent[1])
	e.sent[0], e.sent[1] = byte(id>>8), byte(id)
	s.pending[id] = e
	s.lastUsed = now
	conn := s.conn
	x.mu.Unlock()
	if _, err := conn.Write(e.sent); err != nil {
		if x.take(s, id, e) {
			e.done(nil, fmt.Errorf("udp %s: %w", server, err))
		}
	}
}

// open dials a socket for k and starts its reader, closing the idle
// sockets first when there are maxSockets; x.mu is held.
func (x *udpExchanges) open(k upstreamKey) (*upstreamSocket, error) {
	if len(x.sockets) >= maxSockets {
		x.closeIdle(time.Time{})
	}
	c, err := dialUpstream(context.Background(), "udp", k, x.mark)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	s := &upstreamSocket{key: k, conn: c.(*net.UDPConn), pending: make(map[uint16]*udpExchange)}
	x.sockets[k] = s
	x.wg.Go(func() { x.read(s) })
	return s, nil
}

// take removes exchange e (under ID id) from s if it still waits there,
// and reports whether it did: then the caller owns e.done.
func (x *udpExchanges) take(s *upstreamSocket, id uint16, e *udpExchange) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s.pending[id] != e {
		return false
	}
	delete(s.pending, id)
	return true
}

// read reads s's answers until s closes, each into a pooled buffer taken
// only once the socket is readable, and hands each to its exchange. A
// refusal (ICMP port unreachable) fails every exchange waiting on s: they
// all asked the same server and port.
func (x *udpExchanges) read(s *upstreamSocket) {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return
	}
	for {
		var refused bool
		err := rc.Read(func(fd uintptr) bool {
			buf := bufPool.Get().(*[maxMessage]byte)
			defer bufPool.Put(buf)
			for {
				n, err := unix.Read(int(fd), buf[:])
				switch {
				case err == unix.EINTR:
				case err == unix.EAGAIN:
					return false
				case err == unix.ECONNREFUSED:
					refused = true
					return true
				case err != nil:
					return false // not expected of a UDP socket: wait for the next datagram
				default:
					x.answer(s, buf[:n])
				}
			}
		})
		if err != nil { // closed
			return
		}
		if refused {
			for _, e := range x.takeAll(s) {
				e.done(nil, fmt.Errorf("udp %s: %w", s.key.server, syscall.ECONNREFUSED))
			}
		}
	}
}

// takeAll removes and returns every exchange waiting on s.
func (x *udpExchanges) takeAll(s *upstreamSocket) []*udpExchange {
	x.mu.Lock()
	defer x.mu.Unlock()
	all := make([]*udpExchange, 0, len(s.pending))
	for _, e := range s.pending {
		all = append(all, e)
	}
	clear(s.pending)
	return all
}

// spawn runs f in a goroutine that close waits for.
func (x *udpExchanges) spawn(f func()) { x.wg.Go(f) }

// answer hands msg to the exchange it answers; a datagram that answers
// none (a late answer, a stray or spoofed one) is dropped.
func (x *udpExchanges) answer(s *upstreamSocket, msg []byte) {
	if len(msg) < headerLen {
		return
	}
	read := time.Now()
	id := uint16(msg[0])<<8 | uint16(msg[1])
	x.mu.Lock()
	e := s.pending[id]
	if e == nil || !answers(msg, e.sent) {
		x.mu.Unlock()
		return
	}
	delete(s.pending, id)
	x.mu.Unlock()
	msg[0], msg[1] = byte(e.id>>8), byte(e.id)
	e.answered = read
	e.done(msg, nil)
}

// sweep fails the exchanges past their deadline and closes idle sockets,
// until close.
func (x *udpExchanges) sweep() {
	t := time.NewTicker(min(max(x.timeout/10, minSweep), maxSweep))
	defer t.Stop()
	var expired []*udpExchange
	for {
		select {
		case <-x.stop:
			return
		case now := <-t.C:
			expired = x.expire(now, expired[:0])
			for _, e := range expired {
				e.done(nil, errNoAnswer)
			}
			clear(expired)
		}
	}
}

// expire removes and returns the exchanges past their deadline, and
// closes the sockets idle since upstreamIdle.
func (x *udpExchanges) expire(now time.Time, expired []*udpExchange) []*udpExchange {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.sockets {
		for id, e := range s.pending {
			if now.After(e.deadline) {
				delete(s.pending, id)
				expired = append(expired, e)
			}
		}
	}
	x.closeIdle(now.Add(-upstreamIdle))
	return expired
}

// closeIdle closes the sockets with no exchange waiting, last used
// before since (zero: all of them); x.mu is held.
func (x *udpExchanges) closeIdle(since time.Time) {
	for k, s := range x.sockets {
		if len(s.pending) == 0 && (since.IsZero() || s.lastUsed.Before(since)) {
			delete(x.sockets, k)
			s.conn.Close()
		}
	}
}

// close fails every exchange waiting, closes the sockets and waits for
// their readers and the sweeper; later sends fail at once.
func (x *udpExchanges) close() {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.closed = true
	var waiting []*udpExchange
	for _, s := range x.sockets {
		for _, e := range s.pending {
			waiting = append(waiting, e)
		}
		s.conn.Close()
	}
	clear(x.sockets)
	x.mu.Unlock()
	close(x.stop)
	for _, e := range waiting {
		e.done(nil, errShutdown)
	}
	x.wg.Wait()
}
