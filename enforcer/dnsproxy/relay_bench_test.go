package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// serveUDPRelay runs a UDP relay with no logic on listen until the test
// ends: each client's datagrams go to upstream over a connected socket of
// their own, whose answers go back to the client from listen. It is the
// floor of what any DNS proxy adds: two more sockets and a process between
// the client and the server.
func serveUDPRelay(t testing.TB, listen, upstream netip.AddrPort) {
	t.Helper()
	ln, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		ups := map[netip.AddrPort]*net.UDPConn{}
		defer func() {
			for _, c := range ups {
				c.Close()
			}
		}()
		buf := make([]byte, 64<<10)
		for {
			n, client, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			up := ups[client]
			if up == nil {
				if up, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(upstream)); err != nil {
					continue
				}
				ups[client] = up
				wg.Go(func() {
					buf := make([]byte, 64<<10)
					for {
						n, err := up.Read(buf)
						if err != nil {
							return
						}
						_, _ = ln.WriteToUDPAddrPort(buf[:n], client)
					}
				})
			}
			_, _ = up.Write(buf[:n])
		}
	})
}

// serveRedirectedRelay runs, until the test ends, a UDP relay with no
// logic where the datapath's redirect delivers: a transparent socket on
// 127.0.0.1 (its port returned), each datagram forwarded to its original
// destination from the client's own address over the proxy's shared
// upstream sockets (udpExchanges, SO_MARK mark), each answer sent back from
// that destination through the proxy's raw socket. It is the proxy's path
// without parsing, policy, records or the FQDN cache: the floor of what
// the redirected path can do.
func serveRedirectedRelay(t testing.TB, mark uint32) uint16 {
	t.Helper()
	conn, ln, err := listenPair(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatalf("redirected relay: %v", err)
	}
	ln.Close()
	raw, err := newRawReplier()
	if err != nil {
		conn.Close()
		t.Fatalf("redirected relay: %v", err)
	}
	up := newUDPExchanges(mark, 2*time.Second)
	var wg sync.WaitGroup
	t.Cleanup(func() { conn.Close(); wg.Wait(); up.close(); raw.Close() })
	wg.Go(func() {
		buf, oob := make([]byte, queryBufSize), make([]byte, oobSize)
		for {
			n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				return
			}
			server, ok := origDst(oob[:oobn])
			if !ok {
				continue
			}
			client := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			e := &udpExchange{sent: slices.Clone(buf[:n])}
			e.done = func(answer []byte, err error) {
				if err == nil {
					_ = raw.send(server, client, answer)
				}
			}
			up.send(client.Addr(), server, e)
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

// freeUDPPort is a UDP port free on addr now.
func freeUDPPort(t testing.TB, addr netip.Addr) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

// reportOwnTimes reports p50, p99 and max (bucket bounds) of the proxy's
// own time per query of a paced phase, o; it fails when o counted fewer
// than want queries.
func reportOwnTimes(b *testing.B, o OwnTimes, want uint64) {
	b.Helper()
	if o.Total() < want {
		b.Fatalf("the proxy's own time of %d queries, want %d", o.Total(), want)
	}
	b.ReportMetric(float64(o.Quantile(0.5).Nanoseconds())/1e3, "own_p50_us")
	b.ReportMetric(float64(o.Quantile(0.99).Nanoseconds())/1e3, "own_p99_us")
	b.ReportMetric(float64(o.Quantile(1).Nanoseconds())/1e3, "own_max_us")
}
