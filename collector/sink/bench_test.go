package sink

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// discardSink takes every batch.
type discardSink struct{}

func (discardSink) Name() string                            { return "discard" }
func (discardSink) Write(context.Context, []api.Flow) error { return nil }

// benchQueue is a queue shape the benchmarks compare.
type benchQueue struct {
	name  string
	spool bool          // with a spool, hence a journal
	sync  time.Duration // JournalSyncInterval
}

var benchQueues = []benchQueue{
	{name: "memory"},                                  // no spool: Offer as before the journal
	{name: "journal", spool: true},                    // synced every second (the default)
	{name: "journal-unsynced", spool: true, sync: -1}, // synced only at Close
}

// options are RecommendedQueueOptions' batching (ClickHouse's).
func (bq benchQueue) options(b *testing.B) QueueOptions {
	o := QueueOptions{Capacity: 1 << 18, BatchSize: 1 << 17, Logger: quietLogger(), JournalSyncInterval: bq.sync}
	if bq.spool {
		o.SpoolDir = b.TempDir()
	}
	return o
}

// BenchmarkOfferAccepted is the cost of an accepted Offer (the pipeline
// goroutine's share of a sink queue) without a spool, as before the
// journal, and with one, which writes every flow ahead to its journal.
//
//	go test ./collector/sink/ -run '^$' -bench OfferAccepted -benchtime 2000000x
func BenchmarkOfferAccepted(b *testing.B) {
	for _, bq := range benchQueues[:2] { // without Run, nothing syncs
		b.Run(bq.name, func(b *testing.B) {
			q, err := NewQueue(discardSink{}, bq.options(b))
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			f := testFlow(1)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if !q.Offer(&f) {
					b.StopTimer()
					q.pump(ctx, ctx, false) // what Run does: not the Offer's cost
					b.StartTimer()
					if !q.Offer(&f) {
						b.Fatal("refused after a pump")
					}
				}
			}
		})
	}
}

// BenchmarkQueueThroughput offers flows as fast as one goroutine can while
// Run writes them to a sink that takes everything (and syncs the journal):
// the most a queue carries, without and with the journal.
//
//	go test ./collector/sink/ -run '^$' -bench QueueThroughput -benchtime 2000000x
func BenchmarkQueueThroughput(b *testing.B) {
	for _, bq := range benchQueues {
		b.Run(bq.name, func(b *testing.B) {
			q, err := NewQueue(discardSink{}, bq.options(b))
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
