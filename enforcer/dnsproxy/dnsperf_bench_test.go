package dnsproxy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// dnsperfOutstanding is how many queries dnsperf keeps in flight: its own
// default (-q 100), stated so that a change of default does not change
// the benchmark.
const dnsperfOutstanding = 100

// BenchmarkDNSPerfRedirectedVsDirect is BenchmarkRedirectedVsDirect's
// throughput comparison with dnsperf (DNS-OARC's load generator) as the
// client pod, at its default of 100 queries in flight: what the machine
// can carry each way, rather than what 8 clients that each wait for their
// answer get through. Direct, proxied (the datapath's redirect to the
// proxy) and the redirect relay (the same redirect to a relay with no
// logic: serveRedirectedRelay) alternate, 2 s each, twice. A query
// dnsperf counts lost (unanswered) fails it.
func BenchmarkDNSPerfRedirectedVsDirect(b *testing.B) {
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		labtest.SkipOrFail(b, "dnsperf is not installed (scripts/deps.sh installs it)")
	}
	var emitted atomic.Int64
	l := newRedirectLab(b, false, func(*api.Flow) { emitted.Add(1) })
	target := netip.AddrPortFrom(l.server.IPv4, 53)
	queries := filepath.Join(b.TempDir(), "queries")
	if err := os.WriteFile(queries, []byte("www.example.com A\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	ways := []struct {
		name   string
		steer  uint16 // the redirect's port; 0: none
		metric string // of its throughput against direct's
	}{
		{"direct", 0, ""},
		{"proxied", l.px.Addrs()[0].Port(), "throughput_ratio"},
		{"redirect_relay", serveRedirectedRelay(b, datapath.ProxyMarkUpstream), "redirect_relay_throughput_ratio"},
	}
	const rounds = 2
	for b.Loop() {
		qps := make([]float64, len(ways))
		for range rounds {
			for i, w := range ways {
				l.redirectTo(b, w.steer)
				r, err := runDNSPerf(l.client, dnsperf, target, queries, 2*time.Second)
				if err != nil {
					b.Fatalf("dnsperf, %s: %v", w.name, err)
				}
				if r.lost > 0 {
					b.Fatalf("dnsperf, %s: %d of %d queries lost", w.name, r.lost, r.lost+r.completed)
				}
				qps[i] += r.qps / rounds
			}
		}
		for i, w := range ways {
			if w.metric != "" {
				b.ReportMetric(qps[i]/qps[0], w.metric)
			}
		}
		b.ReportMetric(qps[0], "direct_q/s")
		b.ReportMetric(qps[1], "proxy_q/s")
	}
	l.redirectTo(b, 0)
	if emitted.Load() == 0 {
		b.Fatal("the proxy emitted no record: nothing went through it")
	}
}

// dnsperfResult is what a dnsperf run reports.
type dnsperfResult struct {
	completed, lost int64
	qps             float64
}

var dnsperfLine = regexp.MustCompile(`(?m)^\s*Queries (completed|lost|per second):\s+([0-9.]+)`)

// runDNSPerf runs dnsperf in pod p against target for d, with the queries
// of file queries (dnsperf's "name type" lines) and dnsperfOutstanding
// queries in flight.
func runDNSPerf(p *netlab.Pod, dnsperf string, target netip.AddrPort, queries string, d time.Duration) (dnsperfResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := p.Command(ctx, dnsperf,
		"-s", target.Addr().String(), "-p", strconv.Itoa(int(target.Port())),
		"-d", queries, "-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-q", strconv.Itoa(dnsperfOutstanding)).CombinedOutput()
	if err != nil {
		return dnsperfResult{}, fmt.Errorf("%w: %s", err, out)
	}
	var r dnsperfResult
	seen := map[string]bool{}
	for _, m := range dnsperfLine.FindAllSubmatch(out, -1) {
		field, value := string(m[1]), string(m[2])
		seen[field] = true
		var err error
		switch field {
		case "completed":
			r.completed, err = strconv.ParseInt(value, 10, 64)
		case "lost":
			r.lost, err = strconv.ParseInt(value, 10, 64)
		case "per second":
			r.qps, err = strconv.ParseFloat(value, 64)
		}
		if err != nil {
			return dnsperfResult{}, fmt.Errorf("dnsperf's %q line: %w", field, err)
		}
	}
	if len(seen) != 3 {
		return dnsperfResult{}, fmt.Errorf("dnsperf's output lacks its completed, lost and per-second lines: %s", out)
	}
	return r, nil
}
