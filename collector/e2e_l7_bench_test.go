package collector_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
)

// The entry-to-queryable benchmark's traffic: GETs of unique paths,
// allowed by an L7 rule, from the client pod over kept-alive connections.
const (
	l7QueryRate     = 200 // requests per second
	l7QueryDuration = 20 * time.Second
	l7QuerySettle   = 15 * time.Second
)

// BenchmarkE2EL7EntryToQueryable measures, for each HTTP request through
// the redirect and Envoy under an L7 policy, the time from its access-log
// entry (when the client got the last byte of the answer, the moment
// Envoy logs the exchange) to the moment a polling query on ClickHouse
// first returns its L7 row: Envoy's access-log buffering (100ms), the
// gRPC stream, the collector's pipeline and the ClickHouse sink behind a
// queue with clickhouse.RecommendedQueueOptions (batches flushed every
// half second). Goal: p99 ≤ 2 s. It also reports the stages: entry to the
// collector's sinks and entry to the insert's acknowledgement.
//
//	sudo CI=true go test ./collector/ -run '^$' -bench E2EL7EntryToQueryable -benchtime 1x
func BenchmarkE2EL7EntryToQueryable(b *testing.B) {
	srv := chtest.Start(b)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	store, err := clickhouse.Open(ctx, clickhouse.Options{DSN: srv.DSN("periscope"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	qo := clickhouse.RecommendedQueueOptions()
	qo.Logger = quiet
	probe := &l7LatencyProbe{consumed: map[string]time.Time{}, acked: map[string]time.Time{}}
	sinks, err := sink.Open(ctx, sink.Env{Logger: quiet}, sink.Queued(&l7AckSink{Store: store, probe: probe}, qo))
	if err != nil {
		b.Fatal(err)
	}
	stopSinks := sinks.Start(ctx)
	b.Cleanup(func() { stopSinks() }) //nolint:errcheck // a queue without a spool closes without error

	l := newL7Lab(b, l7LabOptions{sinks: []collector.Sink{&l7ConsumeProbe{next: sinks, probe: probe}}})
	if _, _, err := l.store.Apply("bench.yaml", []byte(serverL7("bench", "[{method: GET, path: '/public/.*'}]"))); err != nil {
		b.Fatal(err)
	}
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: "periscope", Username: "default"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })

	var mu sync.Mutex
	answered := map[string]time.Time{} // path -> when the client had the answer
	seen := map[string]time.Time{}     // path -> when a poll first returned its row
	pctx, stopPoll := context.WithCancel(ctx)
	var polls sync.WaitGroup
	polls.Go(func() {
		since := time.Now().Add(-time.Second)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(pctx, "SELECT http_path FROM flows WHERE l7_protocol = 'http' AND time >= toDateTime(?)", uint32(since.Unix()))
			if err != nil {
				if pctx.Err() == nil {
					b.Errorf("poll: %v", err)
				}
				return
			}
			var paths []string
			for rows.Next() {
				var p string
				if err := rows.Scan(&p); err == nil {
					paths = append(paths, p[strings.Index(p, "/public/"):])
				}
			}
			rows.Close()
			now := time.Now()
			mu.Lock()
			for _, p := range paths {
				if _, ok := seen[p]; !ok {
					seen[p] = now
				}
			}
			// Poll from the oldest answer not seen yet.
			oldest := now
			for p, at := range answered {
				if _, ok := seen[p]; !ok && at.Before(oldest) {
					oldest = at
				}
			}
			mu.Unlock()
			since = oldest.Add(-time.Second)
		}
	})
	b.Cleanup(func() { stopPoll(); polls.Wait() })

	tr := &http.Transport{MaxIdleConnsPerHost: 16, DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return l.pods["client"].DialTCP(ctx, netip.MustParseAddrPort(addr))
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	server := netip.AddrPortFrom(l.addr("server", false), l7Port)
	for b.Loop() {
		var wg sync.WaitGroup
		start := time.Now()
		n := int(l7QueryDuration.Seconds() * l7QueryRate)
		for i := range n {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / l7QueryRate)))
			wg.Go(func() {
				path := "/public/" + strconv.Itoa(i)
				resp, err := client.Get("http://" + server.String() + path)
				if err != nil {
					b.Errorf("GET %s: %v", path, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				at := time.Now()
				mu.Lock()
				answered[path] = at
				mu.Unlock()
			})
		}
		wg.Wait()
		deadline := time.Now().Add(l7QuerySettle)
		for {
			mu.Lock()
			missing := 0
			for p := range answered {
				if _, ok := seen[p]; !ok {
					missing++
				}
			}
			mu.Unlock()
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d answered requests have no queryable row after %s", missing, n, l7QuerySettle)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopPoll()
	polls.Wait()
	// No kept-alive connection may lose its steering (and so its requests).
	if rs, err := l.dp.RedirectStats(); err != nil || rs.Bypass != 0 || rs.NoProxy != 0 {
		b.Errorf("redirect counters %+v (%v): connections went around Envoy", rs, err)
	}
	// Where the time goes: to the collector's sinks (Envoy's buffer, the
	// gRPC stream, the collector), to the insert's acknowledgement (the
	// queue and ClickHouse), to the first poll that saw the row.
	probe.mu.Lock()
	defer probe.mu.Unlock()
	for _, stage := range []struct {
		name string
		at   map[string]time.Time
	}{{"entry_to_sink", probe.consumed}, {"entry_to_ack", probe.acked}, {"entry_to_queryable", seen}} {
		var d []time.Duration
		for p, at := range answered {
			if t, ok := stage.at[p]; ok {
				d = append(d, t.Sub(at))
			}
		}
		if len(d) == 0 {
			b.Fatalf("%s: no request measured", stage.name)
		}
		slices.Sort(d)
		pct := func(x float64) time.Duration { return d[int(x*float64(len(d)-1))] }
		b.ReportMetric(float64(pct(0.5).Milliseconds()), stage.name+"_p50_ms")
		b.ReportMetric(float64(pct(0.99).Milliseconds()), stage.name+"_p99_ms")
		b.ReportMetric(float64(d[len(d)-1].Milliseconds()), stage.name+"_max_ms")
		b.Logf("%d requests: %s min %v p50 %v p99 %v max %v", len(d), stage.name, d[0], pct(0.5), pct(0.99), d[len(d)-1])
	}
}

// l7LatencyProbe notes, per request path, when its L7 RESPONSE record reached
// the collector's sinks and when its row's insert was acknowledged.
type l7LatencyProbe struct {
	mu       sync.Mutex
	consumed map[string]time.Time
	acked    map[string]time.Time
}

// path is the request path of an L7 HTTP response record of the
// benchmark, or "".
func (p *l7LatencyProbe) path(f *api.Flow) string {
	if f.L7 == nil || f.L7.HTTP == nil || f.L7.Type != api.L7TypeResponse {
		return ""
	}
	u := f.L7.HTTP.URL
	if i := strings.Index(u, "/public/"); i >= 0 {
		return u[i:]
	}
	return ""
}

// l7ConsumeProbe is the collector's sink: it notes when each response
// record arrived, then hands every record to next.
type l7ConsumeProbe struct {
	next  collector.Sink
	probe *l7LatencyProbe
}

func (c *l7ConsumeProbe) Consume(f *api.Flow) {
	if p := c.probe.path(f); p != "" {
		now := time.Now()
		c.probe.mu.Lock()
		if _, ok := c.probe.consumed[p]; !ok {
			c.probe.consumed[p] = now
		}
		c.probe.mu.Unlock()
	}
	c.next.Consume(f)
}

// l7AckSink is the ClickHouse store, noting when each response row's
// insert was acknowledged.
type l7AckSink struct {
	*clickhouse.Store
	probe *l7LatencyProbe
}

func (a *l7AckSink) Write(ctx context.Context, batch []api.Flow) error {
	if err := a.Store.Write(ctx, batch); err != nil {
		return err
	}
	now := time.Now()
	a.probe.mu.Lock()
	defer a.probe.mu.Unlock()
	for i := range batch {
		if p := a.probe.path(&batch[i]); p != "" {
			if _, ok := a.probe.acked[p]; !ok {
				a.probe.acked[p] = now
			}
		}
	}
	return nil
}
