package sink

import (
	"context"
	"runtime"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// discardSink takes every batch.
type discardSink struct{}

func (discardSink) Name() string                            { return "discard" }
func (discardSink) Write(context.Context, []api.Flow) error { return nil }

// benchQueueOptions are RecommendedQueueOptions' batching (ClickHouse's),
// with the journal in dir when it is not empty.
func benchQueueOptions(dir string) QueueOptions {
	return QueueOptions{Capacity: 1 << 18, BatchSize: 1 << 17, SpoolDir: dir, Logger: quietLogger()}
}

// BenchmarkOfferAccepted is the cost of an accepted Offer (the pipeline
// goroutine's share of a sink queue) without a spool, as before the
// journal, and with one, which writes every flow ahead to its journal.
//
//	go test ./collector/sink/ -run '^$' -bench OfferAccepted -count 3
func BenchmarkOfferAccepted(b *testing.B) {
	for _, tc := range []struct {
		name  string
		spool bool
	}{{"memory", false}, {"journal", true}} {
		b.Run(tc.name, func(b *testing.B) {
			dir := ""
			if tc.spool {
				dir = b.TempDir()
			}
			q, err := NewQueue(discardSink{}, benchQueueOptions(dir))
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			f := testFlow(1)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !q.Offer(&f) {
					b.StopTimer()
					q.pump(ctx, ctx, false) // what Run does: not the Offer's cost
					b.StartTimer()
					if !q.Offer(&f) {
						b.Fatal("refused after a pump")
					}
				}
				i++
			}
		})
	}
}

// BenchmarkQueueThroughput offers flows as fast as one goroutine can while
// Run writes them to a sink that takes everything: the most a queue
// carries, without and with the journal.
//
//	go test ./collector/sink/ -run '^$' -bench QueueThroughput -count 3
func BenchmarkQueueThroughput(b *testing.B) {
	for _, tc := range []struct {
		name  string
		spool bool
	}{{"memory", false}, {"journal", true}} {
		b.Run(tc.name, func(b *testing.B) {
			dir := ""
			if tc.spool {
				dir = b.TempDir()
			}
			q, err := NewQueue(discardSink{}, benchQueueOptions(dir))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { q.Run(ctx); close(done) }()
			f := testFlow(1)
			for b.Loop() {
				for !q.Offer(&f) {
					runtime.Gosched()
				}
			}
			b.StopTimer()
			cancel()
			<-done
			q.Close()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
}
