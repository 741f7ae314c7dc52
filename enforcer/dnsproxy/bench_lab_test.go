package dnsproxy

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/dnsproxy/dnsload"
)

// BenchmarkProxyVsDirect measures, in one run, queries/s (closed loop, 8
// clients) and the p99 latency at 1,000 queries/s (paced) of a client pod
// asking dnsmasq straight (the server pod's own address) and through the
// transparent proxy (the routed address the router diverts to it). Run it
// with -benchtime=1x: one iteration is the whole comparison.
//
// PERISCOPE_DNSPROXY_BENCH_PORT53=1 makes the proxy listen on port 53 (in
// the router pod: nothing else there has it), so that its replies leave
// from the listener (IP_PKTINFO) instead of the raw socket.
func BenchmarkProxyVsDirect(b *testing.B) {
	l := newDNSLab(b)
	listen := netip.MustParseAddrPort("0.0.0.0:0")
	if os.Getenv("PERISCOPE_DNSPROXY_BENCH_PORT53") != "" {
		listen = netip.MustParseAddrPort("0.0.0.0:53")
	}
	px := startChildProxy(b, l.router, childConfig{
		Listen:       []netip.AddrPort{listen},
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
		var proxyCPU time.Duration
		var proxySwitches int64
		// What the server and the load generator (this process) cost, each
		// way: the proxy's share of the machine against theirs.
		var serverCPU, clientCPU [2]time.Duration
		self := os.Getpid()
		for round := range 4 { // interleaved: direct, proxy, direct, proxy
			target := []netip.AddrPort{direct, proxied}[round%2]
			cpu0, sw0 := processCPU(b, px.cmd.Process.Pid), contextSwitches(b, px.cmd.Process.Pid)
			srv0, cli0 := processCPU(b, l.dnsmasqPID), processCPU(b, self)
			q, err := dnsload.ClosedLoop(l.client, target, query, 8, 2*time.Second)
			if err != nil {
				b.Fatalf("closed loop to %v: %v", target, err)
			}
			serverCPU[round%2] += processCPU(b, l.dnsmasqPID) - srv0
			clientCPU[round%2] += processCPU(b, self) - cli0
			if round%2 == 1 {
				proxyCPU += processCPU(b, px.cmd.Process.Pid) - cpu0
				proxySwitches += contextSwitches(b, px.cmd.Process.Pid) - sw0
			}
			qps[round%2] = append(qps[round%2], q)
		}
		// The proxy's CPU (user and system) per query it answered: what
		// the load on the machine does not change much.
		perQuery := func(cpu time.Duration, way int) float64 {
			return float64(cpu.Microseconds()) / (dnsload.Mean(qps[way]) * 2 * 2)
		}
		b.ReportMetric(perQuery(proxyCPU, 1), "proxy_cpu_us/query")
		b.ReportMetric(float64(proxySwitches)/(dnsload.Mean(qps[1])*2*2), "proxy_switches/query")
		b.ReportMetric(perQuery(serverCPU[0], 0), "server_cpu_us/query_direct")
		b.ReportMetric(perQuery(serverCPU[1], 1), "server_cpu_us/query_proxied")
		b.ReportMetric(perQuery(clientCPU[0], 0), "client_cpu_us/query_direct")
		b.ReportMetric(perQuery(clientCPU[1], 1), "client_cpu_us/query_proxied")
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
// Two floors share the closed-loop rounds: a UDP relay with no logic on the
// host that the client asks by its address (relay: serveUDPRelay, two
// socket hops), and one with no logic behind the same redirect, forwarding
// and answering as the proxy does (redirect_relay: serveRedirectedRelay,
// the proxy's path without parsing, policy, records or the cache).
// Of the paced queries through the proxy it also reports p50, p99 and max
// of the proxy's own time per query (own_*_us: OwnTimes, without the
// kernel's and the server's), which the machine's noise on the end-to-end
// p99 does not hide; then p50 and p99 of the same paced queries through
// the relay on the host (relay_*_us).
func BenchmarkRedirectedVsDirect(b *testing.B) {
	var emitted atomic.Int64
	l := newRedirectLab(b, false, func(*api.Flow) { emitted.Add(1) })
	target := netip.AddrPortFrom(l.server.IPv4, 53)
	query := mustPack(b, "www.example.com.", dns.TypeA)
	self := os.Getpid()
	relay := netip.AddrPortFrom(l.lab.HostIPv4, freeUDPPort(b, l.lab.HostIPv4))
	serveUDPRelay(b, relay, target)
	redirectedRelay := serveRedirectedRelay(b, datapath.ProxyMarkUpstream)
	ways := []struct {
		name   string
		to     netip.AddrPort
		steer  uint16 // the redirect's port; 0: none
		metric string // of its throughput against direct's
	}{
		{"direct", target, 0, ""},
		{"proxied", target, l.px.Addrs()[0].Port(), "throughput_ratio"},
		{"relay", relay, 0, "relay_throughput_ratio"},
		{"redirect_relay", target, redirectedRelay, "redirect_relay_throughput_ratio"},
	}
	const rounds = 2
	for b.Loop() {
		qps := make([][]float64, len(ways))
		// dnsmasq's CPU and this process's (the load generator, and the
		// proxy or a relay), each way.
		serverCPU, selfCPU := make([]time.Duration, len(ways)), make([]time.Duration, len(ways))
		for range rounds { // each way in turn, again
			for i, w := range ways {
				l.redirectTo(b, w.steer)
				srv0, self0 := processCPU(b, l.dnsmasqPID), processCPU(b, self)
				q, err := dnsload.ClosedLoop(l.client, w.to, query, 8, 2*time.Second)
				if err != nil {
					b.Fatalf("closed loop, %s: %v", w.name, err)
				}
				serverCPU[i] += processCPU(b, l.dnsmasqPID) - srv0
				selfCPU[i] += processCPU(b, self) - self0
				qps[i] = append(qps[i], q)
			}
		}
		for i, w := range ways {
			n := dnsload.Mean(qps[i]) * 2 * rounds
			b.ReportMetric(float64(serverCPU[i].Microseconds())/n, "server_cpu_us/query_"+w.name)
			b.ReportMetric(float64(selfCPU[i].Microseconds())/n, "client+proxy_cpu_us/query_"+w.name)
			if w.metric != "" {
				b.ReportMetric(dnsload.Mean(qps[i])/dnsload.Mean(qps[0]), w.metric)
			}
		}
		b.ReportMetric(dnsload.Mean(qps[0]), "direct_q/s")
		b.ReportMetric(dnsload.Mean(qps[1]), "proxy_q/s")
		var p50, p99 [2]time.Duration
		var own OwnTimes
		for i := range 2 {
			l.redirect(b, i == 1)
			own0 := l.px.OwnTimes()
			lat, err := dnsload.Paced(l.client, target, query, 1000, 3*time.Second)
			if err != nil {
				b.Fatalf("paced, redirect %v: %v", i == 1, err)
			}
			p50[i], p99[i] = dnsload.Percentile(lat, 0.50), dnsload.Percentile(lat, 0.99)
			if i == 1 {
				own = l.px.OwnTimes().Sub(own0)
			}
		}
		reportOwnTimes(b, own, 3000)
		// The floor: the same paced queries through a UDP relay with no
		// logic, straight to the server (no redirect).
		l.redirect(b, false)
		lat, err := dnsload.Paced(l.client, relay, query, 1000, 3*time.Second)
		if err != nil {
			b.Fatalf("paced through the relay: %v", err)
		}
		b.ReportMetric(float64(dnsload.Percentile(lat, 0.50).Microseconds()), "relay_p50_us")
		b.ReportMetric(float64(dnsload.Percentile(lat, 0.99).Microseconds()), "relay_p99_us")
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

// processCPU is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat (in clock ticks of 10 ms).
func processCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name (in parentheses, which may hold
	// spaces): state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat has %d fields after the name", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// contextSwitches is the number of times the threads of process pid were
// switched out (voluntarily: a wait; or not), from /proc/<pid>/task/*/status.
func contextSwitches(t testing.TB, pid int) int64 {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}
