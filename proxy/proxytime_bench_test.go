package proxy

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// proxyTimes collects Envoy's own time of each forwarded exchange
// (accesslog.Options.ProxyTime) while a benchmark's phase runs.
type proxyTimes struct {
	mu sync.Mutex
	on bool
	d  []time.Duration
}

// observe keeps d while collecting.
func (p *proxyTimes) observe(d time.Duration) {
	p.mu.Lock()
	if p.on {
		p.d = append(p.d, d)
	}
	p.mu.Unlock()
}

// start forgets what was kept and collects from now on.
func (p *proxyTimes) start() {
	p.mu.Lock()
	p.on, p.d = true, p.d[:0]
	p.mu.Unlock()
}

// stop waits until n were kept (Envoy flushes its access log every
// 100ms) or 10s passed, stops collecting and returns what was kept, sorted.
func (p *proxyTimes) stop(n int) []time.Duration {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		got := len(p.d)
		p.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on = false
	d := slices.Clone(p.d)
	slices.Sort(d)
	return d
}

// reportProxyTimes reports p50, p99 and max of d (Envoy's own time per
// request of a paced 1000 requests/s) as prefix-1k-{p50,p99,max}-µs; it
// fails when there were fewer than want.
func reportProxyTimes(b *testing.B, prefix string, d []time.Duration, want int) {
	b.Helper()
	if len(d) < want {
		b.Fatalf("%s: Envoy's own time of %d exchanges, want %d", prefix, len(d), want)
	}
	q := func(f float64) float64 { return float64(d[int(f*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.5), prefix+"-1k-p50-µs")
	b.ReportMetric(q(0.99), prefix+"-1k-p99-µs")
	b.ReportMetric(q(1), prefix+"-1k-max-µs")
}

// quiet waits until no L7 record arrived for 300ms (10s at most): what
// Envoy logged before is in, so that a phase collects only its own.
func (l *l7Lab) quiet() {
	deadline := time.Now().Add(10 * time.Second)
	last := l.counted.Load() + int64(l.recordCount())
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		now := l.counted.Load() + int64(l.recordCount())
		if now == last {
			return
		}
		last = now
	}
}
