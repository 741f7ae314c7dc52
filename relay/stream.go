package relay

import (
	"container/heap"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
)

// streamHistory answers a query of the peers' ClickHouse history as it
// reads it, never gathering the answer: ClickHouse sends each peer's flows
// in time order, so the peers' answers are merged as they come (the oldest
// head first). First stops every peer's reading at its Nth flow and the
// answer at the Nth overall (per node with PerNode); Last holds the last N
// of each peer only (the request's N, not the answer), then merges them
// and keeps the last N overall (per node with PerNode). A peer that fails
// to answer, or breaks off, is unavailable and the answer goes on without
// it.
func (r *Relay) streamHistory(ctx context.Context, req request, st *answerState, started func() error, emit func(*item) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peers, _ := r.snapshot()
	q := req.peerQuery()
	heads := make([]*head, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			resp, err := r.open(ctx, p, q)
			if err != nil {
				if ctx.Err() == nil {
					p.down(err)
					st.fail(p.name())
					r.log.Debug("peer history failed", "peer", p.addr, "err", err)
				}
				return
			}
			p.up()
			heads[i] = &head{p: p, body: resp.Body, rd: newLineReader(p, resp.Body, &req), order: i}
		})
	}
	wg.Wait()
	defer func() {
		for _, h := range heads {
			if h != nil {
				h.body.Close()
			}
		}
	}()
	if err := started(); err != nil {
		return err
	}
	// next reads h's next flow; a peer that breaks off is unavailable.
	next := func(h *head) bool {
		if req.q.First > 0 && h.n >= req.q.First {
			return false
		}
		for {
			it, err := h.rd.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					h.p.down(err)
					st.fail(h.p.name())
					r.log.Debug("peer history broke off", "peer", h.p.addr, "err", err)
				}
				return false
			}
			if it != nil {
				h.it = it
				h.n++
				h.p.got(1, it.ts)
				return true
			}
		}
	}

	if req.q.Last > 0 {
		// Each peer's last N, then the last N of them all.
		var all []*item
		for _, h := range heads {
			if h == nil {
				continue
			}
			ring, n := make([]*item, req.q.Last), 0
			for ; next(h); n++ {
				ring[n%len(ring)] = h.it
			}
			if n > len(ring) { // oldest first
				k := n % len(ring)
				ring = append(ring[k:], ring[:k]...)
			}
			all = append(all, ring[:min(n, len(ring))]...)
		}
		slices.SortStableFunc(all, func(x, y *item) int { return x.ts.Compare(y.ts) })
		if !req.q.PerNode && len(all) > req.q.Last {
			all = all[len(all)-req.q.Last:]
		}
		for _, it := range all {
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}

	hs := &heads0{}
	for _, h := range heads {
		if h != nil && next(h) {
			heap.Push(hs, h)
		}
	}
	sent := 0
	for hs.Len() > 0 {
		h := (*hs)[0]
		if err := emit(h.it); err != nil {
			return err
		}
		if sent++; req.q.First > 0 && !req.q.PerNode && sent >= req.q.First {
			return nil
		}
		if next(h) {
			heap.Fix(hs, 0)
		} else {
			heap.Pop(hs)
		}
	}
	return nil
}

// head is one peer's answer being merged: its current flow.
type head struct {
	p     *peer
	body  io.Closer
	rd    *lineReader
	it    *item
	n     int // flows read
	order int // the peer's place, to keep equal times stable
}

// heads0 is a min-heap of heads by their flow's time, then peer order.
type heads0 []*head

func (h heads0) Len() int { return len(h) }
func (h heads0) Less(i, j int) bool {
	if a, b := h[i].it.ts, h[j].it.ts; !a.Equal(b) {
		return a.Before(b)
	}
	return h[i].order < h[j].order
}
func (h heads0) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heads0) Push(x any)   { *h = append(*h, x.(*head)) }
func (h *heads0) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
