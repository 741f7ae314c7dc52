package dnsproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
)

// BenchmarkProxyVsDirect measures, in one run, queries/s (closed loop, 8
// clients) and the p99 latency at 1,000 queries/s (paced) of a client pod
// asking dnsmasq straight (the server pod's own address) and through the
// transparent proxy (the routed address the router diverts to it). Run it
// with -benchtime=1x: one iteration is the whole comparison.
func BenchmarkProxyVsDirect(b *testing.B) {
	l := newDNSLab(b)
	px := startChildProxy(b, l.router, childConfig{
		Listen:       []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:0")},
		Endpoints:    map[netip.Addr]api.Endpoint{l.client.IPv4: {ID: 7, PodName: "client"}},
		Rules:        map[uint32][]dnsmatch.Rule{7: {{Policy: testRef("p"), Port: 53, Names: []dnsmatch.Selector{{MatchPattern: "*.example.com"}}}}},
		Timeout:      2 * time.Second,
		DiscardFlows: true,
		CPUProfile:   os.Getenv("PERISCOPE_DNSPROXY_CPUPROFILE"),
	})
	l.divert(b, px.addrs[0].Port(), 0)
	direct := netip.AddrPortFrom(l.dnsP.IPv4, 53)
	proxied := netip.AddrPortFrom(l.vip, 53)
	query := mustPack(b, "www.example.com.", dns.TypeA)

	for b.Loop() {
		var qps [2][]float64
		for round := range 4 { // interleaved: direct, proxy, direct, proxy
			target := []netip.AddrPort{direct, proxied}[round%2]
			q, err := closedLoop(l.client, target, query, 8, 2*time.Second)
			if err != nil {
				b.Fatalf("closed loop to %v: %v", target, err)
			}
			qps[round%2] = append(qps[round%2], q)
		}
		var p50, p99 [2]time.Duration
		for i, target := range []netip.AddrPort{direct, proxied} {
			lat, err := paced(l.client, target, query, 1000, 3*time.Second)
			if err != nil {
				b.Fatalf("paced to %v: %v", target, err)
			}
			p50[i], p99[i] = percentile(lat, 0.50), percentile(lat, 0.99)
		}
		b.ReportMetric(float64(p50[0].Microseconds()), "direct_p50_us")
		b.ReportMetric(float64(p50[1].Microseconds()), "proxy_p50_us")
		d, p := mean(qps[0]), mean(qps[1])
		b.ReportMetric(d, "direct_q/s")
		b.ReportMetric(p, "proxy_q/s")
		b.ReportMetric(p/d, "throughput_ratio")
		b.ReportMetric(float64(p99[0].Microseconds()), "direct_p99_us")
		b.ReportMetric(float64(p99[1].Microseconds()), "proxy_p99_us")
		b.ReportMetric(float64((p99[1] - p99[0]).Microseconds()), "added_p99_us")
	}
}

// closedLoop runs workers clients that each send the next query when the
// last is answered, for d, and returns the answered queries per second.
func closedLoop(p *netlab.Pod, target netip.AddrPort, query []byte, workers int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var answered atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		conn, err := p.DialUDP(ctx, target)
		if err != nil {
			return 0, err
		}
		wg.Go(func() {
			defer conn.Close()
			msg := slices.Clone(query)
			buf := make([]byte, 1500)
			for ctx.Err() == nil {
				if _, err := ask(conn, msg, buf); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
					}
					return
				}
				answered.Add(1)
			}
		})
	}
	start := time.Now()
	wg.Wait()
	return float64(answered.Load()) / time.Since(start).Seconds(), firstErr
}

// paced sends rate queries per second for d, each on a socket of its own
// from a pool, and returns every query's latency.
func paced(p *netlab.Pod, target netip.AddrPort, query []byte, rate int, d time.Duration) ([]time.Duration, error) {
	n := int(d.Seconds() * float64(rate))
	pool := make(chan *net.UDPConn, 64)
	for range cap(pool) {
		conn, err := p.DialUDP(context.Background(), target)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		pool <- conn
	}
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		conn := <-pool
		wg.Go(func() {
			defer func() { pool <- conn }()
			msg := slices.Clone(query)
			msg[0], msg[1] = byte(i>>8), byte(i)
			lat[i], errs[i] = ask(conn, msg, make([]byte, 1500))
		})
	}
	wg.Wait()
	return lat, errors.Join(errs...)
}

// ask sends one query and waits for the answer with its ID.
func ask(conn *net.UDPConn, msg, buf []byte) (time.Duration, error) {
	t0 := time.Now()
	conn.SetDeadline(t0.Add(2 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		return 0, err
	}
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return 0, err
		}
		if n >= headerLen && buf[0] == msg[0] && buf[1] == msg[1] {
			if rcode := buf[3] & 0xf; rcode != 0 {
				return 0, errors.New("answer is not NOERROR: " + dns.RcodeToString[int(rcode)])
			}
			return time.Since(t0), nil
		}
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// BenchmarkRedirectedVsDirect is BenchmarkProxyVsDirect on a node's real
// path: the client pod asks dnsmasq at its own address, with the
// datapath's redirect to the proxy (on loopback, forwarding from the pod's
// address) on, then off (straight to the server), interleaved. Everything
// else, the datapath attached to both pods included, stays the same.
func BenchmarkRedirectedVsDirect(b *testing.B) {
	var emitted atomic.Int64
	l := newRedirectLab(b, false, func(*api.Flow) { emitted.Add(1) })
	target := netip.AddrPortFrom(l.server.IPv4, 53)
	query := mustPack(b, "www.example.com.", dns.TypeA)
	for b.Loop() {
		var qps [2][]float64
		for round := range 4 { // direct, proxy, direct, proxy
			l.redirect(b, round%2 == 1)
			q, err := closedLoop(l.client, target, query, 8, 2*time.Second)
			if err != nil {
				b.Fatalf("closed loop, redirect %v: %v", round%2 == 1, err)
			}
			qps[round%2] = append(qps[round%2], q)
		}
		var p50, p99 [2]time.Duration
		for i := range 2 {
			l.redirect(b, i == 1)
			lat, err := paced(l.client, target, query, 1000, 3*time.Second)
			if err != nil {
				b.Fatalf("paced, redirect %v: %v", i == 1, err)
			}
			p50[i], p99[i] = percentile(lat, 0.50), percentile(lat, 0.99)
		}
		d, p := mean(qps[0]), mean(qps[1])
		b.ReportMetric(d, "direct_q/s")
		b.ReportMetric(p, "proxy_q/s")
		b.ReportMetric(p/d, "throughput_ratio")
		b.ReportMetric(float64(p50[0].Microseconds()), "direct_p50_us")
		b.ReportMetric(float64(p50[1].Microseconds()), "proxy_p50_us")
		b.ReportMetric(float64(p99[0].Microseconds()), "direct_p99_us")
		b.ReportMetric(float64(p99[1].Microseconds()), "proxy_p99_us")
		b.ReportMetric(float64((p99[1] - p99[0]).Microseconds()), "added_p99_us")
	}
	if emitted.Load() == 0 {
		b.Fatal("the proxy emitted no record: nothing went through it")
	}
}
