package collector_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/enforcer/dnsproxy"
	"github.com/periscope-dev/periscope/enforcer/dnsproxy/dnsload"
)

// benchPrefix holds the addresses of the admission benchmark's names: the
// web1 pod takes them all (a local route), the clients route them to it.
var benchPrefix = netip.MustParsePrefix("198.19.192.0/18")

// BenchmarkDNSAnswerToConnection measures the path toFQDNs puts between a
// DNS answer and the first connection to its address: the client pod
// looks up a name no lookup gave before (its address new to the policy),
// the proxy has the policy admit it before the answer is released, and the
// client connects at once (one SYN, no retry): every connection must get
// through. Interleaved with each lookup, one of a name toFQDNs does not
// select (the proxy without an admission) is the baseline; the difference
// of their latencies is the admission. PERISCOPE_DNS_ADMISSIONS sets the
// number of tries (default 10,000). Run with -benchtime=1x.
func BenchmarkDNSAnswerToConnection(b *testing.B) {
	tries := 10000
	if v := os.Getenv("PERISCOPE_DNS_ADMISSIONS"); v != "" {
		var err error
		if tries, err = strconv.Atoi(v); err != nil || tries <= 0 || tries > 1<<14 {
			b.Fatalf("PERISCOPE_DNS_ADMISSIONS=%q: want 1..16384", v)
		}
	}
	hosts := filepath.Join(b.TempDir(), "bench.hosts")
	var lines strings.Builder
	addr := benchPrefix.Addr()
	for i := range tries {
		fmt.Fprintf(&lines, "%s h%d.bench.example p%d.plain.example\n", addr, i, i)
		addr = addr.Next()
	}
	if err := os.WriteFile(hosts, []byte(lines.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	// TTL 3 s: the names expire as the run goes on, so the policy holds the
	// last seconds' addresses, as on a node.
	l := newDNSLab(b, "--addn-hosts="+hosts, "--local-ttl=3", "--local=/bench.example/", "--local=/plain.example/")
	web, client := l.pods["web1"], l.pods["client"]
	mustRun(b, web.Command(context.Background(), "ip", "route", "add", "local", benchPrefix.String(), "dev", "lo"))
	mustRun(b, client.Command(context.Background(), "ip", "route", "add", benchPrefix.String(), "via", web.IPv4.String()))
	l.start(b)
	l.reset(b, egressPolicy("bench", "client", dnsRule(anyName), fqdnRule(`[{matchPattern: "*.bench.example"}]`, 80)))
	server := netip.AddrPortFrom(l.pods["dns"].IPv4, 53)

	incremental0, recompiled0 := l.node.store.Admissions()
	for b.Loop() {
		var admitted, plain []time.Duration
		failures := 0
		start := time.Now()
		for i := range tries {
			lat, a, err := timedLookup(client, server, fmt.Sprintf("h%d.bench.example", i))
			if err != nil {
				b.Fatalf("try %d: %v", i, err)
			}
			admitted = append(admitted, lat)
			if ok, _ := l.connect("client", netip.AddrPortFrom(a, 80)); !ok {
				failures++
				b.Logf("try %d: the connection to %s, right after its answer, failed", i, a)
			}
			if lat, _, err = timedLookup(client, server, fmt.Sprintf("p%d.plain.example", i)); err != nil {
				b.Fatalf("baseline %d: %v", i, err)
			}
			plain = append(plain, lat)
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(tries), "tries")
		b.ReportMetric(float64(failures), "failures")
		incremental, recompiled := l.node.store.Admissions()
		b.ReportMetric(float64(incremental-incremental0), "incremental_admissions")
		b.ReportMetric(float64(recompiled-recompiled0), "recompiled_admissions")
		b.ReportMetric(float64(dnsload.Percentile(admitted, 0.5).Microseconds()), "admitted_p50_us")
		b.ReportMetric(float64(dnsload.Percentile(admitted, 0.99).Microseconds()), "admitted_p99_us")
		b.ReportMetric(float64(dnsload.Percentile(plain, 0.5).Microseconds()), "plain_p50_us")
		b.ReportMetric(float64(dnsload.Percentile(plain, 0.99).Microseconds()), "plain_p99_us")
		b.ReportMetric(float64((dnsload.Percentile(admitted, 0.5) - dnsload.Percentile(plain, 0.5)).Microseconds()), "admission_p50_us")
		b.ReportMetric(float64(tries)/elapsed.Seconds(), "tries/s")
		if failures > 0 {
			b.Errorf("%d of %d connections opened right after their answer failed", failures, tries)
		}
	}
}

// timedLookup resolves name's IPv4 address from pod p at server and times it.
func timedLookup(p interface {
	Resolve(context.Context, netip.AddrPort, string, bool) (netip.Addr, error)
}, server netip.AddrPort, name string) (time.Duration, netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	a, err := p.Resolve(ctx, server, name, false)
	return time.Since(t0), a, err
}

// BenchmarkDNSProxyWiredVsDirect is dnsproxy's BenchmarkRedirectedVsDirect
// through the collector's wiring: a policy's rules.dns puts the client's
// DNS behind the proxy (the collector's pipeline recording every query and
// answer, the FQDN cache naming them), removing it sends it straight to
// dnsmasq. Closed-loop queries/s, interleaved; then p50/p99 at 1,000
// queries/s each way, and p50/p99/max of the proxy's own time per paced
// query (own_*_us: dnsproxy.OwnTimes). Run with -benchtime=1x.
func BenchmarkDNSProxyWiredVsDirect(b *testing.B) {
	l := newDNSLab(b)
	l.start(b)
	target := netip.AddrPortFrom(l.pods["dns"].IPv4, 53)
	query, err := dnsload.Query("www.example.com.", dns.TypeA)
	if err != nil {
		b.Fatal(err)
	}
	viaProxy := egressPolicy("dns-bench", "client", dnsRule(anyName))
	set := func(proxy bool) {
		if proxy {
			l.reset(b, viaProxy)
		} else {
			l.reset(b, "")
		}
	}
	for b.Loop() {
		var qps [2][]float64
		for round := range 4 { // direct, proxy, direct, proxy
			set(round%2 == 1)
			q, err := dnsload.ClosedLoop(l.pods["client"], target, query, 8, 2*time.Second)
			if err != nil {
				b.Fatalf("closed loop, proxy %v: %v (proxy counters %+v)", round%2 == 1, err, l.node.dns.Proxy().Stats())
			}
			qps[round%2] = append(qps[round%2], q)
		}
		var p50, p99 [2]time.Duration
		var own dnsproxy.OwnTimes
		for i := range 2 {
			set(i == 1)
			own0 := l.node.dns.Proxy().OwnTimes()
			lat, err := dnsload.Paced(l.pods["client"], target, query, 1000, 3*time.Second)
			if err != nil {
				b.Fatalf("paced, proxy %v: %v (proxy counters %+v)", i == 1, err, l.node.dns.Proxy().Stats())
			}
			p50[i], p99[i] = dnsload.Percentile(lat, 0.50), dnsload.Percentile(lat, 0.99)
			if i == 1 {
				own = l.node.dns.Proxy().OwnTimes().Sub(own0)
			}
		}
		if own.Total() < 3000 {
			b.Fatalf("the proxy's own time of %d paced queries, want 3000", own.Total())
		}
		b.ReportMetric(float64(own.Quantile(0.5).Nanoseconds())/1e3, "own_p50_us")
		b.ReportMetric(float64(own.Quantile(0.99).Nanoseconds())/1e3, "own_p99_us")
		b.ReportMetric(float64(own.Quantile(1).Nanoseconds())/1e3, "own_max_us")
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
}

// mustRun runs cmd and fails with its output.
func mustRun(tb testing.TB, cmd interface{ CombinedOutput() ([]byte, error) }) {
	tb.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%v: %s", err, out)
	}
}
