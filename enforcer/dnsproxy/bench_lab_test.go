package dnsproxy

import (
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/dnsproxy/dnsload"
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
			q, err := dnsload.ClosedLoop(l.client, target, query, 8, 2*time.Second)
			if err != nil {
				b.Fatalf("closed loop to %v: %v", target, err)
			}
			qps[round%2] = append(qps[round%2], q)
		}
		var p50, p99 [2]time.Duration
		for i, target := range []netip.AddrPort{direct, proxied} {
			lat, err := dnsload.Paced(l.client, target, query, 1000, 3*time.Second)
			if err != nil {
				b.Fatalf("paced to %v: %v", target, err)
			}
			p50[i], p99[i] = dnsload.Percentile(lat, 0.50), dnsload.Percentile(lat, 0.99)
		}
		b.ReportMetric(float64(p50[0].Microseconds()), "direct_p50_us")
		b.ReportMetric(float64(p50[1].Microseconds()), "proxy_p50_us")
		d, p := dnsload.Mean(qps[0]), dnsload.Mean(qps[1])
		b.ReportMetric(d, "direct_q/s")
		b.ReportMetric(p, "proxy_q/s")
		b.ReportMetric(p/d, "throughput_ratio")
		b.ReportMetric(float64(p99[0].Microseconds()), "direct_p99_us")
		b.ReportMetric(float64(p99[1].Microseconds()), "proxy_p99_us")
		b.ReportMetric(float64((p99[1] - p99[0]).Microseconds()), "added_p99_us")
	}
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
			q, err := dnsload.ClosedLoop(l.client, target, query, 8, 2*time.Second)
			if err != nil {
				b.Fatalf("closed loop, redirect %v: %v", round%2 == 1, err)
			}
			qps[round%2] = append(qps[round%2], q)
		}
		var p50, p99 [2]time.Duration
		for i := range 2 {
			l.redirect(b, i == 1)
			lat, err := dnsload.Paced(l.client, target, query, 1000, 3*time.Second)
			if err != nil {
				b.Fatalf("paced, redirect %v: %v", i == 1, err)
			}
			p50[i], p99[i] = dnsload.Percentile(lat, 0.50), dnsload.Percentile(lat, 0.99)
		}
		d, p := dnsload.Mean(qps[0]), dnsload.Mean(qps[1])
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
