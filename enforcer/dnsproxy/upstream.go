package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// maxMessage is the largest DNS message (a TCP length prefix's limit).
const maxMessage = 65535

// errNoAnswer is an upstream exchange that reached its deadline.
var errNoAnswer = errors.New("no answer before the deadline")

// exchangeFunc sends query to server over proto (api.ProtoUDP or
// api.ProtoTCP) and returns the answer's bytes. Tests and the fuzz target
// replace the network one.
type exchangeFunc func(ctx context.Context, proto uint8, server netip.AddrPort, query []byte) ([]byte, error)

// exchange talks to the server from the host's address. A UDP answer whose
// ID or flags do not fit the query is ignored (a stray or spoofed
// datagram), and the wait goes on until ctx's deadline.
func exchange(ctx context.Context, proto uint8, server netip.AddrPort, query []byte) ([]byte, error) {
	network := "udp"
	if proto == protoTCP {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, server, err)
	}
	defer conn.Close()
	// Closing on ctx's end also covers a context cancelled at shutdown.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var answer []byte
	if proto == protoTCP {
		answer, err = exchangeTCP(conn, query)
	} else {
		answer, err = exchangeUDP(conn, query)
	}
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
	buf := make([]byte, maxMessage)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		if answers(buf[:n], query) {
			return buf[:n:n], nil
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
		return nil, fmt.Errorf("answer does not match the query (ID or QR bit)")
	}
	return answer, nil
}

// answers reports whether msg looks like the answer to query: a response
// with the query's ID.
func answers(msg, query []byte) bool {
	return len(msg) >= headerLen && msg[0] == query[0] && msg[1] == query[1] && msg[2]&0x80 != 0
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
