package sink

import (
	"context"
	"sync"

	"github.com/periscope-dev/periscope/api"
)

// Fanout hands each flow to every Observer (synchronously) and offers it to
// every Queue (without blocking), and runs the queues.
type Fanout struct {
	observers []Observer
	queues    []*Queue
}

// NewFanout returns a fanout over the queues and observers.
func NewFanout(queues []*Queue, observers ...Observer) *Fanout {
	return &Fanout{observers: observers, queues: queues}
}

// Offer gives f to every observer, then offers it to every queue. It never
// blocks on a sink; a full queue counts the drop. It does not keep f.
func (fo *Fanout) Offer(f *api.Flow) {
	for _, o := range fo.observers {
		o.Consume(f)
	}
	for _, q := range fo.queues {
		q.Offer(f)
	}
}

// Consume is Offer; it lets the collector use a Fanout as its Sink.
func (fo *Fanout) Consume(f *api.Flow) { fo.Offer(f) }

// Queues returns the fanout's queues (for their Stats).
func (fo *Fanout) Queues() []*Queue { return fo.queues }

// Run runs every queue until ctx is done and waits until all of them have
// flushed and returned.
func (fo *Fanout) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range fo.queues {
		wg.Go(func() { q.Run(ctx) })
	}
	wg.Wait()
}
