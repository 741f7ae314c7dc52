package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api/agentevent"
)

// AgentEvents reads the agent events of every peer (their GET
// /api/v1/agent-events): an agentevent.Reader. First and Last count per
// node, as a GetFlows number does through a relay; stored events come
// merged by time; a follow then passes on each peer's new events as they
// come, reconnecting to a peer that breaks (from just after its newest
// event) until ctx is done. Peers that cannot be reached are skipped.
func (r *Relay) AgentEvents() agentevent.Reader { return eventReader{r} }

type eventReader struct{ r *Relay }

// maxEventLine bounds one event line from a peer.
const maxEventLine = 1 << 20

func (er eventReader) Read(ctx context.Context, q agentevent.Query, fn func(*agentevent.Event) error) error {
	r := er.r
	peers, _ := r.snapshot()
	if !q.Follow {
		return r.storedEvents(ctx, peers, q, fn)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each peer's stored events come first, in its own order; then new
	// ones, as they come.
	out := make(chan agentevent.Event, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, p := range peers {
		wg.Go(func() { r.followEvents(ctx, p, q, out) })
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-out:
			if err := fn(&e); err != nil {
				return err
			}
		}
	}
}

// storedEvents asks every peer for the events q selects and delivers them
// merged by time.
func (r *Relay) storedEvents(ctx context.Context, peers []*peer, q agentevent.Query, fn func(*agentevent.Event) error) error {
	lists := make([][]agentevent.Event, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			err := r.peerEvents(ctx, p, q, func(e *agentevent.Event) error {
				lists[i] = append(lists[i], *e)
				return nil
			})
			if err != nil && ctx.Err() == nil {
				r.log.Debug("peer agent events failed", "peer", p.addr, "err", err)
			}
		})
	}
	wg.Wait()
	var all []agentevent.Event
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortStableFunc(all, func(a, b agentevent.Event) int { return a.Time.Compare(b.Time) })
	for i := range all {
		if err := fn(&all[i]); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// followEvents follows p's events into out until ctx is done, reconnecting
// with backoff after a break from just after the newest event received.
func (r *Relay) followEvents(ctx context.Context, p *peer, q agentevent.Query, out chan<- agentevent.Event) {
	backoff := r.opts.BackoffMin
	for ctx.Err() == nil {
		got := false
		err := r.peerEvents(ctx, p, q, func(e *agentevent.Event) error {
			got = true
			if e.Time.After(q.Since) || q.Since.IsZero() {
				q.Since = e.Time
			}
			select {
			case out <- *e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if ctx.Err() != nil {
			return
		}
		r.log.Debug("peer agent events broke", "peer", p.addr, "err", err, "retry_in", backoff)
		if got {
			backoff = r.opts.BackoffMin
			q.Last, q.First = 0, 0
			q.Since = q.Since.Add(time.Nanosecond)
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

// peerEvents reads p's answer to q, calling fn with each event.
func (r *Relay) peerEvents(ctx context.Context, p *peer, q agentevent.Query, fn func(*agentevent.Event) error) error {
	resp, err := r.get(ctx, p, agentevent.Path, agentevent.Values(q))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 16<<10)
	var e agentevent.Event
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) < maxEventLine {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 && line[0] == '{' {
			if perr := agentevent.ParseJSON(line, &e); perr != nil {
				return fmt.Errorf("read agent events: %w", perr)
			}
			if ferr := fn(&e); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read agent events: %w", err)
		}
	}
}
