package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy"
)

// BenchmarkL7RedirectVsDirect measures HTTP/1.1 through the datapath's
// redirect and Envoy against the same server direct, in one run: at
// saturation with wrk (requests/s, p50, p99), and at a fixed 1000
// requests/s from a paced client (p50, p99 from each request's scheduled
// time), and of the paced requests through Envoy p50, p99 and max of
// Envoy's own time per request (envoy-own-1k-: accesslog's ProxyTime: the
// request's and the response's time in Envoy, without the kernel's and
// the server's), which the machine's noise on the end-to-end p99 does
// not hide. Run with -benchtime 1x: one round is several seconds.
func BenchmarkL7RedirectVsDirect(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		labtest.SkipOrFail(b, "no wrk (scripts/deps.sh installs it)")
	}
	l := newL7Lab(b, envoy.Options{})
	l.countOnly.Store(true)
	for range b.N {
		sat := map[uint16]wrkResult{}
		paced := map[uint16][2]time.Duration{}
		for _, port := range []uint16{portDirect, portHTTP} {
			url := "http://" + netip.AddrPortFrom(l.server.IPv4, port).String() + "/"
			out, err := exec.Command("ip", "netns", "exec", l.client.NetNSName, wrk,
				"-t2", "-c32", "-d5s", "--latency", url).CombinedOutput()
			if err != nil {
				b.Fatalf("wrk: %v\n%s", err, out)
			}
			if sat[port], err = parseWrk(string(out)); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			l.quiet()
			l.ownTimes.start()
			p50, p99, err := l.paced(1000, 5*time.Second, port)
			if err != nil {
				b.Fatal(err)
			}
			paced[port] = [2]time.Duration{p50, p99}
			if port == portHTTP {
				reportProxyTimes(b, "envoy-own", l.ownTimes.stop(5000), 5000)
			} else {
				l.ownTimes.stop(0)
			}
		}
		d, e := sat[portDirect], sat[portHTTP]
		b.ReportMetric(d.rps, "direct-req/s")
		b.ReportMetric(e.rps, "envoy-req/s")
		b.ReportMetric(e.rps/d.rps, "throughput-ratio")
		b.ReportMetric(float64(d.p99.Microseconds()), "direct-sat-p99-µs")
		b.ReportMetric(float64(e.p99.Microseconds()), "envoy-sat-p99-µs")
		b.ReportMetric(float64(paced[portDirect][0].Microseconds()), "direct-1k-p50-µs")
		b.ReportMetric(float64(paced[portDirect][1].Microseconds()), "direct-1k-p99-µs")
		b.ReportMetric(float64(paced[portHTTP][0].Microseconds()), "envoy-1k-p50-µs")
		b.ReportMetric(float64(paced[portHTTP][1].Microseconds()), "envoy-1k-p99-µs")
		b.ReportMetric(float64((paced[portHTTP][1] - paced[portDirect][1]).Microseconds()), "added-1k-p99-µs")
	}
}

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range wrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.p99 == 0 {
		return r, fmt.Errorf("no latency distribution in wrk's output")
	}
	return r, nil
}

// paced sends rate GETs per second for d from the client pod over
// kept-alive connections and returns the p50 and p99 latency, each
// measured from the request's scheduled time (no coordinated omission).
func (l *l7Lab) paced(rate int, d time.Duration, port uint16) (p50, p99 time.Duration, err error) {
	p50, p99, failed := l.pacedPath(rate, d, port, "/")
	if failed > 0 {
		return 0, 0, fmt.Errorf("%d of the paced requests failed", failed)
	}
	return p50, p99, nil
}

// pacedPath is paced with requests for path; failed counts the requests
// that got no answer or another status than 200.
func (l *l7Lab) pacedPath(rate int, d time.Duration, port uint16, path string) (p50, p99 time.Duration, failed int) {
	return l.pacedTo(rate, d, netip.AddrPortFrom(l.server.IPv4, port), path)
}

// pacedTo is pacedPath to target.
func (l *l7Lab) pacedTo(rate int, d time.Duration, target netip.AddrPort, path string) (p50, p99 time.Duration, failed int) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return l.client.DialTCP(ctx, netip.MustParseAddrPort(addr))
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "http://" + target.String() + path
	n := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 128)
	start := time.Now().Add(50 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := c.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("GET %s: %s", url, resp.Status)
				}
			}
			lat[i] = time.Since(at)
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat[n/2], lat[n*99/100], failed
}
