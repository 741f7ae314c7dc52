package relay

import (
	"context"
	"errors"
	"io"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Request is one flows query to the relay.
type Request struct {
	// Chips are filter chips forwarded to every peer.
	Chips []string
	// Match, when set, is applied by the relay to what the peers return
	// (after Chips); First and Last then count matching flows across peers.
	Match Matcher
	// Since and Until bound flow times, inclusively; zero is unbounded.
	Since, Until time.Time
	// First and Last keep the first or last N flows across all peers, or of
	// each peer with PerPeer.
	First, Last int
	// PerPeer counts First and Last per peer, as hubble-relay counts a
	// GetFlows number: the answer holds up to N flows of every node.
	PerPeer bool
	// Follow continues with live flows (after the Last or Since replay).
	Follow bool
	// Source is "" for the collectors' in-memory rings, "clickhouse" for
	// their long-term history (a history query: no Follow).
	Source string
}

// FlowsOptions tune one answer.
type FlowsOptions struct {
	// Started, when set, is called once before the first flow with the
	// nodes that could not be reached; an error ends the answer.
	Started func(unavailable []string) error
	// Idle, when set, is called whenever a live answer has caught up: the
	// place to flush.
	Idle func() error
}

// answer tracks the peers that were unavailable during one answer.
type answer struct {
	mu          sync.Mutex
	unavailable []string
	started     bool
}

func (a *answer) fail(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.unavailable, name) {
		a.unavailable = append(a.unavailable, name)
	}
}

func (a *answer) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.unavailable)
}

// Flows answers req from every peer, calling fn with each flow in time
// order, until the history is done or, for a follow, ctx is done or fn
// fails. It returns the nodes that were unavailable at some point of the
// answer: a non-empty list means the answer is partial. Unreachable peers
// never fail an answer.
func (r *Relay) Flows(ctx context.Context, req Request, opts FlowsOptions, fn func(*Item) error) ([]string, error) {
	r.answers.Add(1)
	a := &answer{}
	err := r.flows(ctx, req, opts, a, fn)
	un := a.list()
	if len(un) > 0 {
		r.partials.Add(1)
	}
	return un, err
}

func (r *Relay) flows(ctx context.Context, req Request, opts FlowsOptions, a *answer, fn func(*Item) error) error {
	started := func() error {
		if a.started {
			return nil
		}
		a.started = true
		if opts.Started != nil {
			return opts.Started(a.list())
		}
		return nil
	}
	emit := func(it *Item) error {
		r.sent.Add(1)
		return fn(it)
	}
	if !req.Follow {
		items := r.history(ctx, req, a)
		if err := started(); err != nil {
			return err
		}
		for _, it := range items {
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}
	live := req
	if req.Last > 0 {
		// The replay of a follow is a history query up to now; the live
		// part starts just after it, so every peer's replay then holds
		// only what arrived in between.
		now := time.Now()
		hist := req
		hist.Follow, hist.Until = false, now
		for _, it := range r.history(ctx, hist, a) {
			if err := started(); err != nil {
				return err
			}
			if err := emit(it); err != nil {
				return err
			}
		}
		live.Last, live.Since = 0, now.Add(time.Nanosecond)
	}
	return r.follow(ctx, live, opts, a, started, emit)
}

// history asks every peer concurrently and merges the answers by time,
// applying First and Last across peers.
func (r *Relay) history(ctx context.Context, req Request, a *answer) []*Item {
	peers, _ := r.snapshot()
	q := req.peerQuery()
	results := make([][]*Item, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			items, err := r.fetch(ctx, p, q, req.Match)
			if err != nil {
				if ctx.Err() == nil {
					p.down(err)
					a.fail(p.name())
					r.log.Debug("peer history failed", "peer", p.addr, "err", err)
				}
				return
			}
			p.up()
			// Each peer's own first/last N suffice for the global ones.
			switch {
			case req.Last > 0 && len(items) > req.Last:
				items = items[len(items)-req.Last:]
			case req.First > 0 && len(items) > req.First:
				items = items[:req.First]
			}
			results[i] = items
		})
	}
	wg.Wait()
	var all []*Item
	for _, items := range results {
		// A peer's answer is in its store's order, which is nearly but not
		// strictly time order; the stable sort below fixes both.
		all = append(all, items...)
	}
	slices.SortStableFunc(all, func(x, y *Item) int { return x.Time.Compare(y.Time) })
	switch {
	case req.PerPeer:
	case req.Last > 0 && len(all) > req.Last:
		all = all[len(all)-req.Last:]
	case req.First > 0 && len(all) > req.First:
		all = all[:req.First]
	}
	return all
}

// streamState is one peer's live stream within a follow.
type streamState struct {
	cancel context.CancelFunc
}

// follow merges every peer's live stream through a window.
func (r *Relay) follow(ctx context.Context, req Request, opts FlowsOptions, a *answer,
	started func() error, emit func(*Item) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []*Item, 64)
	firsts := make(chan struct{}, 1024) // one per stream's first connection outcome
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	streams := map[*peer]*streamState{}
	syncPeers := func() <-chan struct{} {
		peers, changed := r.snapshot()
		keep := map[*peer]bool{}
		for _, p := range peers {
			keep[p] = true
			if streams[p] != nil {
				continue
			}
			sctx, scancel := context.WithCancel(ctx)
			streams[p] = &streamState{cancel: scancel}
			wg.Go(func() { r.stream(sctx, p, req, a, batches, firsts) })
		}
		for p, s := range streams {
			if !keep[p] {
				s.cancel()
				delete(streams, p)
			}
		}
		return changed
	}
	changed := syncPeers()

	// Wait for every peer's first outcome, or ConnectWait, before starting,
	// so that the start can name the unreachable nodes.
	wait := time.NewTimer(r.opts.ConnectWait)
	for n := len(streams); n > 0; n-- {
		select {
		case <-firsts:
			continue
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return nil
		}
		break
	}
	wait.Stop()
	if err := started(); err != nil {
		return err
	}

	w := newWindow(r.opts.MergeWindow, r.opts.MaxBuffered)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	release := func(now time.Time) error {
		for it := w.next(now); it != nil; it = w.next(now) {
			if err := emit(it); err != nil {
				return err
			}
		}
		if at, ok := w.due(); ok {
			timer.Reset(max(at.Sub(now), time.Millisecond))
		}
		return nil
	}
	idle := func() error {
		if len(batches) == 0 && opts.Idle != nil {
			return opts.Idle()
		}
		return nil
	}
	if err := idle(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			changed = syncPeers()
		case <-firsts:
		case batch := <-batches:
			now := time.Now()
			for _, it := range batch {
				if w.add(it, now) {
					if w.span > 0 {
						r.late.Add(1)
					}
					if err := emit(it); err != nil {
						return err
					}
				}
			}
			if err := release(now); err != nil {
				return err
			}
			if err := idle(); err != nil {
				return err
			}
		case <-timer.C:
			if err := release(time.Now()); err != nil {
				return err
			}
			if err := idle(); err != nil {
				return err
			}
		}
	}
}

// stream follows one peer, reconnecting with exponential backoff; after a
// break it resumes just after the newest flow it received. It reports its
// first connection outcome on firsts.
func (r *Relay) stream(ctx context.Context, p *peer, req Request, a *answer, out chan<- []*Item, firsts chan<- struct{}) {
	q := req.peerQuery()
	var newest time.Time
	backoff := r.opts.BackoffMin
	first := true
	report := func() {
		if first {
			first = false
			select {
			case firsts <- struct{}{}:
			default:
			}
		}
	}
	for ctx.Err() == nil {
		connected := false
		err := r.streamOnce(ctx, p, q, req.Match, out, &newest, func() {
			connected = true
			report()
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stream ended")
		}
		p.down(err)
		a.fail(p.name())
		r.log.Debug("peer stream broke", "peer", p.addr, "err", err, "retry_in", backoff)
		report()
		if !newest.IsZero() {
			q = req.peerQuery()
			q.Del("last")
			q.Set("since", newest.Add(time.Nanosecond).UTC().Format(time.RFC3339Nano))
		}
		if connected {
			backoff = r.opts.BackoffMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, r.opts.BackoffMax)
	}
}

// streamOnce runs one follow request to p until it breaks.
func (r *Relay) streamOnce(ctx context.Context, p *peer, q url.Values, match Matcher,
	out chan<- []*Item, newest *time.Time, connected func()) error {
	resp, err := r.open(ctx, p, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	p.up()
	connected()
	rd := newReader(p, resp.Body, match)
	const maxBatch = 256
	var batch []*Item
	for {
		it, err := rd.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if it != nil {
			batch = append(batch, it)
			if it.Time.After(*newest) {
				*newest = it.Time
			}
		}
		if len(batch) > 0 && (len(batch) >= maxBatch || !rd.buffered()) {
			p.got(len(batch), batch[len(batch)-1].Time)
			select {
			case out <- batch:
			case <-ctx.Done():
				return nil
			}
			batch = nil
		}
	}
}
