package relay

import (
	"time"

	"github.com/periscope-dev/periscope/api"
)

// item is one flow passing through the relay: its time, the peer it came
// from, and its JSON line as the peer wrote it (api.AppendJSON's form, no
// newline), which the relay forwards without re-encoding, or the flow
// parsed from it.
type item struct {
	ts   time.Time // the flow's time
	peer string    // the peer's address
	line []byte    // nil when only the parsed flow is needed
	flow *api.Flow // the parsed line when the answer needs it (see request.parse), else nil
	seq  uint64    // arrival order, to keep equal times stable
}

// itemLess orders by time, then by arrival.
func itemLess(a, b *item) bool {
	if a.ts.Equal(b.ts) {
		return a.seq < b.seq
	}
	return a.ts.Before(b.ts)
}

// window orders items arriving from several peers: each item is held for at
// most the window after it arrived and items are released in time order. An
// item older than one already released is late: it is released at once.
//
// window is used by one goroutine.
type window struct {
	span     time.Duration
	max      int // items held at most; past it the oldest is released early
	heap     []*item
	arrivals []arrival // FIFO of arrival times, oldest first
	head     int
	seq      uint64
	last     time.Time // time of the last item released
	released bool
	late     uint64
}

type arrival struct {
	at   time.Time
	item *item
}

func newWindow(span time.Duration, max int) *window {
	if max <= 0 {
		max = 1 << 16
	}
	return &window{span: span, max: max}
}

// add takes it, arrived at now. It returns true when the item is late and
// the caller must release it at once instead (it is not held).
func (w *window) add(it *item, now time.Time) (late bool) {
	if w.released && it.ts.Before(w.last) {
		w.late++
		return true
	}
	w.seq++
	it.seq = w.seq
	if w.span <= 0 {
		// No window: release in arrival order.
		w.last, w.released = it.ts, true
		return true
	}
	w.push(it)
	w.arrivals = append(w.arrivals, arrival{at: now, item: it})
	return false
}

// due reports when the oldest held item must be released; ok is false when
// nothing is held.
func (w *window) due() (time.Time, bool) {
	w.dropReleased()
	if w.head == len(w.arrivals) {
		return time.Time{}, false
	}
	return w.arrivals[w.head].at.Add(w.span), true
}

// next releases the earliest held item if some held item has waited for the
// whole window (or too many are held), else returns nil.
func (w *window) next(now time.Time) *item {
	if len(w.heap) == 0 {
		return nil
	}
	if at, ok := w.due(); len(w.heap) <= w.max && (!ok || now.Before(at)) {
		return nil
	}
	return w.pop()
}

// drain releases the earliest held item regardless of the window.
func (w *window) drain() *item {
	if len(w.heap) == 0 {
		return nil
	}
	return w.pop()
}

func (w *window) pop() *item {
	it := w.heap[0]
	n := len(w.heap) - 1
	w.heap[0] = w.heap[n]
	w.heap[n] = nil
	w.heap = w.heap[:n]
	w.down(0)
	w.last, w.released = it.ts, true
	it.seq = 0 // marks it released for the arrivals FIFO
	return it
}

// dropReleased advances the arrivals FIFO past released items.
func (w *window) dropReleased() {
	for w.head < len(w.arrivals) && w.arrivals[w.head].item.seq == 0 {
		w.arrivals[w.head] = arrival{}
		w.head++
	}
	if w.head > 1024 && w.head*2 > len(w.arrivals) {
		n := copy(w.arrivals, w.arrivals[w.head:])
		clear(w.arrivals[n:])
		w.arrivals = w.arrivals[:n]
		w.head = 0
	}
}

func (w *window) push(it *item) {
	w.heap = append(w.heap, it)
	i := len(w.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !itemLess(w.heap[i], w.heap[p]) {
			break
		}
		w.heap[i], w.heap[p] = w.heap[p], w.heap[i]
		i = p
	}
}

func (w *window) down(i int) {
	n := len(w.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && itemLess(w.heap[r], w.heap[l]) {
			m = r
		}
		if !itemLess(w.heap[m], w.heap[i]) {
			return
		}
		w.heap[i], w.heap[m] = w.heap[m], w.heap[i]
		i = m
	}
}
