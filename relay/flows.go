package relay

import (
	"context"
	"errors"
	"io"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// Reader reads the flows of every peer, merged: their rings (Relay.Ring)
// or their ClickHouse history (Relay.History). It is a flowquery.Reader.
//
// Filters chips can say (filter.Set.Chips) are pushed down to every peer;
// others are matched here, on what the peers return for the time range, and
// then First and Last count matching flows. First and Last count across
// peers, or with Query.PerNode per peer, as hubble-relay counts a GetFlows
// number. A follow merges the peers' live streams in time order within the
// merge window. Unreachable peers never fail an answer: it begins naming
// those unreachable then (Answer.Started), and its Outcome names every node
// unavailable at some point of it. An Answer with Line gets the peers' lines
// as they sent them, without decoding and encoding again.
type Reader struct {
	r      *Relay
	source string // "" for the rings, flowquery.SourceClickHouse for history
}

// Ring reads the peers' in-memory rings, live or not.
func (r *Relay) Ring() *Reader { return &Reader{r: r} }

// History reads the peers' ClickHouse history (collectors with
// --clickhouse; the others answer with an error and are unavailable).
func (r *Relay) History() *Reader { return &Reader{r: r, source: flowquery.SourceClickHouse} }

// Query answers q from every peer (see Reader).
func (rd *Reader) Query(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	return rd.r.answer(ctx, newRequest(q, false, rd.source, a.Line != nil), a)
}

// Follow answers q from every peer and goes on with their live flows (see
// Reader); history answers flowquery.ErrNotLive.
func (rd *Reader) Follow(ctx context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	if rd.source != "" {
		return flowquery.Outcome{}, flowquery.ErrNotLive
	}
	q.First = 0
	return rd.r.answer(ctx, newRequest(q, true, rd.source, a.Line != nil), a)
}

var _ flowquery.Reader = (*Reader)(nil)

// request is one answer's query, as the peers are asked it.
type request struct {
	q      flowquery.Query
	follow bool
	source string // the peers' source parameter; "" for their rings
	// chips are the filter pushed down to every peer, when chips can say
	// it; match is the filter otherwise, matched here after reading.
	chips []string
	match *filter.Set
	// parse says the peers' lines are parsed as they are read (in each
	// peer's goroutine): to match them, or for an answer that takes flows.
	parse bool
	// lines says the answer takes the lines as the peers sent them.
	lines bool
}

func newRequest(q flowquery.Query, follow bool, source string, lines bool) request {
	req := request{q: q, follow: follow, source: source, lines: lines}
	if chips, ok := q.Filter.Chips(); ok {
		req.chips = chips
	} else {
		req.match = q.Filter
	}
	req.parse = req.match != nil || !lines
	return req
}

// answerState tracks the peers that were unavailable during one answer.
type answerState struct {
	mu          sync.Mutex
	unavailable []string
	started     bool
}

func (a *answerState) fail(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.unavailable, name) {
		a.unavailable = append(a.unavailable, name)
	}
}

func (a *answerState) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.unavailable)
}

// answer answers req from every peer, delivering each flow to a in time
// order, until the history is done or, for a follow, ctx is done or a
// function of a fails. Its Outcome names the nodes that were unavailable
// at some point of the answer.
func (r *Relay) answer(ctx context.Context, req request, a flowquery.Answer) (flowquery.Outcome, error) {
	r.answers.Add(1)
	st := &answerState{}
	err := r.flows(ctx, req, a, st)
	un := st.list()
	if len(un) > 0 {
		r.partials.Add(1)
	}
	return flowquery.Outcome{Unavailable: un}, err
}

func (r *Relay) flows(ctx context.Context, req request, a flowquery.Answer, st *answerState) error {
	started := func() error {
		if st.started {
			return nil
		}
		st.started = true
		return a.Begin(st.list())
	}
	emit := func(it *item) error {
		r.sent.Add(1)
		if req.lines {
			return a.Line(it.line)
		}
		return a.Flow(it.flow)
	}
	if !req.follow && req.source == flowquery.SourceClickHouse {
		return r.streamHistory(ctx, req, st, started, emit)
	}
	if !req.follow {
		items := r.history(ctx, req, st)
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
	if req.q.Last > 0 {
		// The replay of a follow is a history query up to now; the live
		// part starts just after it, so every peer's replay then holds
		// only what arrived in between.
		now := time.Now()
		hist := req
		hist.follow, hist.q.Until = false, now
		for _, it := range r.history(ctx, hist, st) {
			if err := started(); err != nil {
				return err
			}
			if err := emit(it); err != nil {
				return err
			}
		}
		live.q.Last, live.q.Since = 0, now.Add(time.Nanosecond)
	}
	return r.follow(ctx, live, a, st, started, emit)
}

// history asks every peer concurrently and merges the answers by time,
// applying First and Last across peers (or per peer with PerNode).
func (r *Relay) history(ctx context.Context, req request, st *answerState) []*item {
	peers, _ := r.snapshot()
	q := req.peerQuery()
	results := make([][]*item, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			items, err := r.fetch(ctx, p, q, &req)
			if err != nil {
				if ctx.Err() == nil {
					p.down(err)
					st.fail(p.name())
					r.log.Debug("peer history failed", "peer", p.addr, "err", err)
				}
				return
			}
			p.up()
			// Each peer's own first/last N suffice for the global ones.
			switch {
			case req.q.Last > 0 && len(items) > req.q.Last:
				items = items[len(items)-req.q.Last:]
			case req.q.First > 0 && len(items) > req.q.First:
				items = items[:req.q.First]
			}
			results[i] = items
		})
	}
	wg.Wait()
	var all []*item
	for _, items := range results {
		// A peer's answer is in its store's order, which is nearly but not
		// strictly time order; the stable sort below fixes both.
		all = append(all, items...)
	}
	slices.SortStableFunc(all, func(x, y *item) int { return x.ts.Compare(y.ts) })
	switch {
	case req.q.PerNode:
	case req.q.Last > 0 && len(all) > req.q.Last:
		all = all[len(all)-req.q.Last:]
	case req.q.First > 0 && len(all) > req.q.First:
		all = all[:req.q.First]
	}
	return all
}

// streamState is one peer's live stream within a follow.
type streamState struct {
	cancel context.CancelFunc
}

// follow merges every peer's live stream through a window.
func (r *Relay) follow(ctx context.Context, req request, a flowquery.Answer, st *answerState,
	started func() error, emit func(*item) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []*item, 64)
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
			wg.Go(func() { r.stream(sctx, p, req, st, batches, firsts) })
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
		if len(batches) == 0 {
			return a.CaughtUp()
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
func (r *Relay) stream(ctx context.Context, p *peer, req request, st *answerState, out chan<- []*item, firsts chan<- struct{}) {
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
		err := r.streamOnce(ctx, p, q, &req, out, &newest, func() {
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
		st.fail(p.name())
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
func (r *Relay) streamOnce(ctx context.Context, p *peer, q url.Values, req *request,
	out chan<- []*item, newest *time.Time, connected func()) error {
	resp, err := r.open(ctx, p, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	p.up()
	connected()
	rd := newLineReader(p, resp.Body, req)
	const maxBatch = 256
	var batch []*item
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
			if it.ts.After(*newest) {
				*newest = it.ts
			}
		}
		if len(batch) > 0 && (len(batch) >= maxBatch || !rd.buffered()) {
			p.got(len(batch), batch[len(batch)-1].ts)
			select {
			case out <- batch:
			case <-ctx.Done():
				return nil
			}
			batch = nil
		}
	}
}
