package ui

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fanoutBaseline is the 1-client run's CPU per second, for the ratio.
var fanoutBaseline float64

// BenchmarkFanout streams 10,000 flows/s from a collector store through the
// hub to N WebSocket clients that read as fast as they can. One op is one
// flow written to the store; the pace is fixed, so ns/op is wall time.
// Metrics: CPU ms per wall second (the whole process: store, hub, pumps,
// and the clients' reads, which only copy bytes), heap per client, flows
// skipped per client, and the CPU ratio to the 1-client baseline.
func BenchmarkFanout(b *testing.B) {
	for _, clients := range []int{1, 50} {
		b.Run(fmt.Sprintf("clients=%d/rate=10000", clients), func(b *testing.B) {
			benchFanout(b, clients, 10000)
		})
	}
}

func benchFanout(b *testing.B, clients, rate int) {
	store := ring.New(65536)
	u, err := New(Options{Source: store})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(u)
	defer func() {
		srv.Close()
		u.Close()
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var (
		wg       sync.WaitGroup
		received atomic.Uint64
		skipped  = make([]atomic.Uint64, clients)
		conns    []*websocket.Conn
		// The clients' own read buffers live in this process too; they
		// are subtracted from the heap figure.
		clientBufs atomic.Int64
	)
	for ci := range clients {
		conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv, ""), nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		if err := conn.WriteJSON(map[string]any{"type": "subscribe"}); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			buf := make([]byte, 0, 256<<10)
			clientBufs.Add(int64(cap(buf)))
			key := []byte(`"skipped":`)
			for {
				_, r, err := conn.NextReader()
				if err != nil {
					return
				}
				buf = buf[:0]
				for {
					if len(buf) == cap(buf) {
						old := cap(buf)
						buf = append(buf, 0)[:len(buf)]
						clientBufs.Add(int64(cap(buf) - old))
					}
					n, err := r.Read(buf[len(buf):cap(buf)])
					buf = buf[:len(buf)+n]
					if err != nil {
						break
					}
				}
				if !bytes.HasPrefix(buf, []byte(`{"type":"flows"`)) {
					continue
				}
				received.Add(uint64(bytes.Count(buf, []byte(`{"flow":`))))
				if k := bytes.LastIndex(buf, key); k >= 0 {
					num := buf[k+len(key):]
					if end := bytes.IndexByte(num, '}'); end >= 0 {
						if n, err := strconv.ParseUint(string(num[:end]), 10, 64); err == nil {
							skipped[ci].Store(n)
						}
					}
				}
			}
		})
	}
	// Let the subscriptions land.
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, _ := u.Stats(context.Background())
		if st.Clients == clients || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)

	now := time.Now()
	flows := make([]api.Flow, 1000)
	for i := range flows {
		flows[i] = labFlow(i, now)
	}
	perTick := rate / 100
	b.ResetTimer()
	cpu0, wall0 := cpuTime(), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	written := 0
	for written < b.N {
		<-tick.C
		for k := 0; k < perTick && written < b.N; k++ {
			f := &flows[written%len(flows)]
			f.Time = time.Now()
			store.Write(f)
			written++
		}
	}
	tick.Stop()
	// Let the last batches go out.
	time.Sleep(3 * DefaultBatchInterval)
	wall, cpu := time.Since(wall0), cpuTime()-cpu0
	b.StopTimer()

	// Live heap with every client still connected and subscribed.
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	st, _ := u.Stats(context.Background())
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()

	cpuPerSec := float64(cpu.Milliseconds()) / wall.Seconds()
	b.ReportMetric(cpuPerSec, "cpu-ms/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e3, "cpu-µs/flow")
	server := int64(after.HeapAlloc) - int64(before.HeapAlloc) - clientBufs.Load()
	b.ReportMetric(float64(server)/float64(clients)/1024, "heap-KiB/client")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(clients), "alloc-B/flow/client")
	b.ReportMetric(float64(st.Skipped)/float64(clients), "skipped/client")
	b.ReportMetric(float64(received.Load())/float64(clients), "delivered/client")
	b.ReportMetric(float64(st.UpstreamSkipped), "upstream-skipped")
	if clients == 1 {
		fanoutBaseline = cpuPerSec
	} else if fanoutBaseline > 0 {
		b.ReportMetric(cpuPerSec/fanoutBaseline, "cpu-x-1client")
	}
}

// BenchmarkBrowserRender1000Rows measures, in Chromium, the time from the
// arrival of a 1,000-flow message (a subscription's replay) to its rows in
// the DOM: JSON parsing, row extraction, the wait for a frame and the
// virtualized render. One op is one such batch.
func BenchmarkBrowserRender1000Rows(b *testing.B) {
	ctx := uitest.Browser(b)
	l := startLab(b, 0, Options{})
	l.src.rate.Store(20000)
	for l.c.Store().Seen() < 2000 {
		time.Sleep(10 * time.Millisecond)
	}
	l.src.rate.Store(0)
	run(b, ctx, 20*time.Second, navigateAndWait(l.base+"/")...)
	waitJS(b, ctx, `window.periscope && periscope.lastFlows === 1000`, 10*time.Second)
	var total, renderOnly float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := evalJS[int](b, ctx, `periscope.batches`)
		evalJS[bool](b, ctx, `periscope.refresh(), true`)
		waitJS(b, ctx, `periscope.batches > `+strconv.Itoa(before)+` && periscope.lastFlows === 1000`, 10*time.Second)
		total += evalJS[float64](b, ctx, `periscope.lastBatchMs`)
		renderOnly += evalJS[float64](b, ctx, `periscope.renderMs[periscope.renderMs.length-1]`)
	}
	b.StopTimer()
	b.ReportMetric(total/float64(b.N), "ms/1000rows")
	b.ReportMetric(renderOnly/float64(b.N), "render-ms")
}

// BenchmarkBrowserFrameRate counts animation frames in Chromium while the
// UI receives flows live, with 0 flows/s as the baseline. One op is one
// second of measurement.
func BenchmarkBrowserFrameRate(b *testing.B) {
	var idle float64
	for _, rate := range []int{0, 5000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			ctx := uitest.Browser(b)
			l := startLab(b, rate, Options{})
			run(b, ctx, 20*time.Second, navigateAndWait(l.base+"/")...)
			if rate > 0 {
				waitJS(b, ctx, `periscope.state.received > 1000`, 10*time.Second)
			}
			evalJS[bool](b, ctx, `(() => {
				window.__fps = { frames: 0, worst: 0, last: performance.now() };
				(function tick(t) {
					__fps.frames++;
					__fps.worst = Math.max(__fps.worst, t - __fps.last);
					__fps.last = t;
					requestAnimationFrame(tick);
				})(performance.now());
				window.__fps.received = periscope.state.received;
				window.__fps.t0 = performance.now();
				return true;
			})()`)
			b.ResetTimer()
			time.Sleep(time.Duration(b.N) * time.Second)
			b.StopTimer()
			type fps struct {
				Frames, Worst, Secs, Received, Skipped, Shown float64
				BatchMs                                       float64
			}
			m := evalJS[fps](b, ctx, `(() => {
				const s = (performance.now() - __fps.t0) / 1000;
				const b = periscope.batchMs.slice(-100);
				return { Frames: __fps.frames, Worst: __fps.worst, Secs: s,
					Received: periscope.state.received - __fps.received, Skipped: periscope.state.skipped,
					Shown: periscope.state.received ? Number(document.querySelector('[data-testid="count-shown"]').textContent) : 0,
					BatchMs: b.length ? b.reduce((a, [, ms]) => a + ms, 0) / b.length : 0 };
			})()`)
			fr := m.Frames / m.Secs
			b.ReportMetric(fr, "frames/s")
			b.ReportMetric(m.Worst, "worst-frame-ms")
			b.ReportMetric(m.Received/m.Secs, "flows/s-received")
			b.ReportMetric(m.Skipped, "skipped")
			b.ReportMetric(m.BatchMs, "batch-arrival-to-DOM-ms")
			if rate == 0 {
				idle = fr
			} else if idle > 0 {
				b.ReportMetric(fr/idle, "fps-x-idle")
			}
			screenshot(b, ctx, fmt.Sprintf("rate-%d.png", rate))
		})
	}
}

func navigateAndWait(url string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(`body`))}
}
