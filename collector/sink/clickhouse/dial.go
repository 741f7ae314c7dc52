package clickhouse

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// dialer connects to a server for clickhouse-go (its DialContext): TCP,
// then TLS when tlsConfig is set, each connection a stallConn.
func dialer(timeout, writeTimeout time.Duration, tlsConfig *tls.Config) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		var conn net.Conn = &stallConn{Conn: raw, timeout: writeTimeout}
		if tlsConfig != nil {
			cfg := tlsConfig.Clone()
			if cfg.ServerName == "" {
				host, _, _ := net.SplitHostPort(addr)
				cfg.ServerName = host
			}
			tc := tls.Client(conn, cfg)
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
			}
			conn = tc
		}
		return conn, nil
	}
}

// stallConn bounds every write by timeout (or by the deadline its user set,
// when that is sooner): a server that stops reading, hung or stopped, fails
// the insert after timeout, which the queue retries, instead of holding the
// sink's writer, and the collector's shutdown, forever. clickhouse-go
// bounds the blocks an INSERT sends before its last by nothing else (a
// context's cancellation reaches only the final Send).
type stallConn struct {
	net.Conn
	timeout  time.Duration
	deadline atomic.Int64 // the user's write deadline, Unix ns; 0: none
}

func (c *stallConn) Write(b []byte) (int, error) {
	d := time.Now().Add(c.timeout)
	if u := c.deadline.Load(); u != 0 && u < d.UnixNano() {
		d = time.Unix(0, u)
	}
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.remember(t)
	return c.Conn.SetDeadline(t)
}

func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.remember(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) remember(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(0)
		return
	}
	c.deadline.Store(t.UnixNano())
}
