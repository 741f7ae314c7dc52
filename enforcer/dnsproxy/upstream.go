package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxMessage is the largest DNS message (a TCP length prefix's limit).
const maxMessage = 65535

// errNoAnswer is an upstream exchange that reached its deadline.
var errNoAnswer = errors.New("no answer before the deadline")

// exchangeFunc sends query to server over proto (api.ProtoUDP or
// api.ProtoTCP) and returns the answer's bytes. Tests and the fuzz target
// replace the network one.
// from is the source address (zero: the host's).
type exchangeFunc func(ctx context.Context, proto uint8, from netip.Addr, server netip.AddrPort, query []byte) ([]byte, error)

// upstream dials a server for each exchange of p.exchange (the TCP path;
// UDP queries go through udpExchanges' shared sockets).
type upstream struct {
	mark uint32 // SO_MARK of every upstream socket; 0: none
}

// upstreamKey is a source address (zero: the host's) and a server.
type upstreamKey struct {
	from   netip.Addr
	server netip.AddrPort
}

// bufPool holds read buffers of the largest DNS message.
var bufPool = sync.Pool{New: func() any { return new([maxMessage]byte) }}

// dialUpstream connects a socket to k's server from k's source (the
// host's when zero: IP_TRANSPARENT otherwise), with SO_MARK mark (0:
// none).
func dialUpstream(ctx context.Context, network string, k upstreamKey, mark uint32) (net.Conn, error) {
	d := net.Dialer{Control: upstreamControl(k.from.IsValid(), mark)}
	if k.from.IsValid() {
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: k.from.AsSlice()}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: k.from.AsSlice()}
		}
	}
	return d.DialContext(ctx, network, k.server.String())
}

// upstreamControl sets IP_TRANSPARENT on a socket that binds a client's
// address, and SO_MARK when mark is not 0.
func upstreamControl(transparent bool, mark uint32) func(network, address string, rc syscall.RawConn) error {
	if !transparent && mark == 0 {
		return nil
	}
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if transparent {
				level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
				if strings.HasSuffix(network, "6") {
					level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
				}
				if err := unix.SetsockoptInt(int(fd), level, opt, 1); err != nil {
					serr = fmt.Errorf("upstream %s %s: IP_TRANSPARENT: %w", network, address, err)
					return
				}
			}
			if mark != 0 {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
					serr = fmt.Errorf("upstream %s %s: SO_MARK: %w", network, address, err)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// exchange sends query to server from the address from (zero: the
// host's) and returns the answer. A UDP answer
// that is not the answer to query (ID, QR bit, question) is ignored (a
// stray or spoofed datagram), and the wait goes on until ctx's deadline.
func (u *upstream) exchange(ctx context.Context, proto uint8, from netip.Addr, server netip.AddrPort, query []byte) ([]byte, error) {
	network := "udp"
	if proto == protoTCP {
		network = "tcp"
	}
	conn, err := dialUpstream(ctx, network, upstreamKey{from, server}, u.mark)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, server, err)
	}
	// Cutting the deadline on ctx's end also covers a context cancelled
	// at shutdown.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	var answer []byte
	if proto == protoTCP {
		answer, err = exchangeTCP(conn, query)
	} else {
		answer, err = exchangeUDP(conn, query)
	}
	stop()
	conn.Close()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = errNoAnswer
		}
		return nil, fmt.Errorf("%s %s: %w", network, server, err)
	}
	return answer, nil
}

func exchangeUDP(conn net.Conn, query []byte) ([]byte, error) {
	if _, err := conn.Write(query); err != nil {
		return nil, err
	}
	buf := bufPool.Get().(*[maxMessage]byte)
	defer bufPool.Put(buf)
	for {
		n, err := conn.Read(buf[:])
		if err != nil {
			return nil, err
		}
		if answers(buf[:n], query) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func exchangeTCP(conn net.Conn, query []byte) ([]byte, error) {
	msg := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(msg, uint16(len(query)))
	copy(msg[2:], query)
	if _, err := conn.Write(msg); err != nil {
		return nil, err
	}
	answer, err := readTCPMessage(conn)
	if err != nil {
		return nil, err
	}
	if !answers(answer, query) {
		return nil, fmt.Errorf("answer does not match the query (ID, QR bit or question)")
	}
	return answer, nil
}

// answers reports whether msg looks like the answer to query: a response
// with the query's ID that repeats its question, byte for byte (a server
// echoes the question as asked).
func answers(msg, query []byte) bool {
	if len(msg) < headerLen || len(query) < headerLen || msg[0] != query[0] || msg[1] != query[1] || msg[2]&0x80 == 0 {
		return false
	}
	end := questionEnd(query)
	if end < 0 || query[5] != 1 || query[4] != 0 {
		return true // no single plain question to compare; the parser judges
	}
	if msg[4] != 0 || msg[5] != 1 {
		return msg[4] == 0 && msg[5] == 0 // some servers drop the question of a FORMERR
	}
	return len(msg) >= end && string(msg[headerLen:end]) == string(query[headerLen:end])
}

// questionEnd returns where the first question of msg ends, or -1 when
// its name is compressed or cut short.
func questionEnd(msg []byte) int {
	i := headerLen
	for i < len(msg) {
		l := int(msg[i])
		switch {
		case l == 0:
			if i+5 > len(msg) {
				return -1
			}
			return i + 5
		case l&0xc0 != 0:
			return -1
		}
		i += 1 + l
	}
	return -1
}

// readTCPMessage reads one length-prefixed DNS message.
func readTCPMessage(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(l[:])
	if n < headerLen {
		return nil, fmt.Errorf("TCP message of %d bytes is shorter than a DNS header", n)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// writeTCPMessage writes one length-prefixed DNS message in one write.
func writeTCPMessage(w io.Writer, msg []byte) error {
	b := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(b, uint16(len(msg)))
	copy(b[2:], msg)
	_, err := w.Write(b)
	return err
}
