package dnsproxy

import (
	"sync"

	"github.com/periscope-dev/periscope/api"
)

// recordQueue hands the handlers' records to Run in batches: a push into
// an empty queue wakes Run, which then takes what has come every
// recordLinger until a wait brings nothing, so that under load Run wakes a
// few hundred times a second instead of twice per query (each wake of a
// parked goroutine costs the handler a thread wake-up).
type recordQueue struct {
	mu    sync.Mutex
	buf   []*api.Flow
	limit int
	ready chan struct{} // a push made the queue non-empty
}

func newRecordQueue(limit int) *recordQueue {
	return &recordQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push queues f without waiting; false when the queue is full.
func (q *recordQueue) push(f *api.Flow) bool {
	q.mu.Lock()
	if len(q.buf) >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.buf = append(q.buf, f)
	first := len(q.buf) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// take returns the queued records, in order, leaving the queue empty;
// spare (emptied) becomes the queue's next buffer.
func (q *recordQueue) take(spare []*api.Flow) []*api.Flow {
	clear(spare)
	q.mu.Lock()
	out := q.buf
	q.buf = spare[:0]
	q.mu.Unlock()
	return out
}
