package clickhouse

import (
	"context"
	"encoding/binary"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
)

// rssBytes is the process's resident set (/proc/self/statm), independent of
// the Go heap's own accounting and of GC timing.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// offerAt offers copies of flows (each with a fresh UUID) at rate per second
// for d, stamping each with the time of its Offer, and returns how many it
// offered.
func offerAt(q *sink.Queue, flows []api.Flow, rate float64, d time.Duration) uint64 {
	start := time.Now()
	var n uint64
	var f api.Flow
	for {
		el := time.Since(start)
		if el >= d {
			return n
		}
		target := uint64(el.Seconds() * rate)
		for n < target {
			f = flows[n%uint64(len(flows))]
			binary.LittleEndian.PutUint64(f.UUID[:8], 0xbe0c)
			binary.LittleEndian.PutUint64(f.UUID[8:], n)
			f.Time = time.Now()
			q.Offer(&f)
			n++
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkOverloadRSS offers a synthetic 1 M flows/s for 20s to a queue
// with RecommendedQueueOptions in front of a real ClickHouse 18.16 (which
// takes far less), samples the process RSS every 50ms, and checks that
// every offered flow is accounted for: written + dropped + queued + failed.
//
//	go test ./collector/sink/clickhouse/ -run '^$' -bench OverloadRSS -benchtime 1x
func BenchmarkOverloadRSS(b *testing.B) {
	s, _ := openStore(b, nil, "periscope")
	flows := genFlows(21, 1<<12, time.Now())
	for b.Loop() {
		q, stop := runQueue(b, s, RecommendedQueueOptions())
		baseRSS := rssBytes()
		var peak int64
		stopSampling := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				peak = max(peak, rssBytes())
				select {
				case <-stopSampling:
					return
				case <-t.C:
				}
			}
		})
		d := 20 * time.Second
		offered := offerAt(q, flows, 1e6, d)
		st := q.Stats()
		close(stopSampling)
		wg.Wait()
		if got := st.Written + st.Dropped + st.Failed + uint64(st.Queued); got != offered {
			b.Errorf("offered %d != written %d + dropped %d + failed %d + queued %d", offered, st.Written, st.Dropped, st.Failed, st.Queued)
		}
		b.ReportMetric(float64(offered)/d.Seconds(), "offered/s")
		b.ReportMetric(float64(st.Written)/float64(offered), "written/offered")
		b.ReportMetric(float64(st.Dropped)/float64(offered), "dropped/offered")
		b.ReportMetric(float64(peak)/(1<<20), "peak_RSS_MiB")
		b.ReportMetric(float64(baseRSS)/(1<<20), "start_RSS_MiB")
		b.Logf("offered %d in %s: %+v; RSS %d MiB at start, peak %d MiB", offered, d, st, baseRSS>>20, peak>>20)
		stop()
	}
}

// latencySink records, per flow, the time from its Offer (stamped in
// Flow.Time) to the acknowledgement of the insert that stored it: ClickHouse
// makes an acknowledged insert's rows visible to queries at once.
type latencySink struct {
	*Store
	mu  sync.Mutex
	lat []time.Duration
}

func (l *latencySink) Write(ctx context.Context, batch []api.Flow) error {
	if err := l.Store.Write(ctx, batch); err != nil {
		return err
	}
	now := time.Now()
	l.mu.Lock()
	for i := range batch {
		l.lat = append(l.lat, now.Sub(batch[i].Time))
	}
	l.mu.Unlock()
	return nil
}

// BenchmarkOfferToQueryable offers 20k flows/s for 15s and reports the
// Offer-to-queryable latency's p50 and p99, with RecommendedQueueOptions'
// FlushInterval and, as the baseline in the same run, a 250ms one.
//
//	go test ./collector/sink/clickhouse/ -run '^$' -bench OfferToQueryable -benchtime 1x
func BenchmarkOfferToQueryable(b *testing.B) {
	s, _ := openStore(b, nil, "periscope")
	flows := genFlows(22, 1<<12, time.Now())
	for b.Loop() {
		for _, flush := range []time.Duration{RecommendedQueueOptions().FlushInterval, 250 * time.Millisecond} {
			ls := &latencySink{Store: s}
			qo := RecommendedQueueOptions()
			qo.FlushInterval = flush
			q, stop := runQueue(b, ls, qo)
			before := s.Stats().Inserted
			offered := offerAt(q, flows, 20000, 15*time.Second)
			stop()
			lat := slices.Clone(ls.lat)
			slices.Sort(lat)
			if len(lat) == 0 {
				b.Fatal("nothing written")
			}
			p := func(x float64) time.Duration { return lat[int(x*float64(len(lat)-1))] }
			name := "flush_" + flush.String()
			b.ReportMetric(float64(p(0.5).Milliseconds()), name+"_p50_ms")
			b.ReportMetric(float64(p(0.99).Milliseconds()), name+"_p99_ms")
			b.Logf("flush %s: %d offered, %d inserted, p50 %s p99 %s max %s", flush, offered,
				s.Stats().Inserted-before, p(0.5), p(0.99), lat[len(lat)-1])
		}
	}
}
