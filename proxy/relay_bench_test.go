package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// serveRelay runs a TCP relay with no logic on listen until the test
// ends: each connection is copied both ways, through user space, to a
// connection of its own to upstream. It is the floor of what any proxy in
// the path adds: two more sockets and a process between client and server.
func serveRelay(t testing.TB, listen, upstream netip.AddrPort) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(listen))
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			down, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer down.Close()
				up, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(upstream))
				if err != nil {
					return
				}
				defer up.Close()
				var copies sync.WaitGroup
				copies.Go(func() { copyThroughUser(up, down) })
				copyThroughUser(down, up)
				copies.Wait()
			})
		}
	})
}

// copyThroughUser copies src to dst through a buffer (no splice: a
// proxy reads what it forwards) until src ends, then closes dst's writing
// half and src's reading half.
func copyThroughUser(dst, src *net.TCPConn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				_ = dst.CloseWrite()
			}
			break
		}
	}
	_ = src.CloseRead()
}
