package dnsproxy

import (
	"net"
	"net/netip"
	"sync"
	"testing"
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
