package ui

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// inboundBuffer is how many flows may wait between the upstream follow and
// the hub; beyond it flows are skipped and counted (upstream_skipped).
const inboundBuffer = 8192

// upstreamRetry is how long the hub waits before following the source again
// after the follow failed.
const upstreamRetry = time.Second

// statusEvery is how often each client is sent a status message.
const statusEvery = time.Second

// item is one flow on its way to the hub, encoded once for every client.
type item struct {
	flow api.Flow
	json []byte
}

// subscribeReq asks the hub to (re)subscribe a client; none subscribes it
// to nothing (after a bad request).
type subscribeReq struct {
	c         *client
	sub       uint64
	filter    *filter.Set
	none      bool
	replay    bool
	replayTil time.Time
}

// replayDone tells the hub that a client's replay ended, with the IDs of
// the replayed flows from the last dedupHorizon before its end.
type replayDone struct {
	c    *client
	sub  uint64
	seen map[[16]byte]struct{}
}

// A flow reaches the live stream later than the store: the relay holds it
// for its merge window, and a collector's ring lags the kernel. So live flows
// stamped before a replay's end may or may not have been replayed. The hub
// tells them apart by ID: it keeps the IDs of flows replayed from the last
// dedupHorizon before the replay's end, for dedupHold after it.
const (
	dedupHorizon = 10 * time.Second
	dedupHold    = 30 * time.Second
)

// hub owns the set of clients and the upstream follow; only its goroutine
// touches the clients' hub-side state.
type hub struct {
	src      flowquery.Reader
	log      *slog.Logger
	interval time.Duration
	maxBatch int
	budget   int // bytes held for one client (Options.ClientBuffer)
	history  bool

	register   chan *client
	unregister chan *client
	subscribe  chan subscribeReq
	replayed   chan replayDone
	inbound    chan item
	statsReq   chan chan HubStats
	done       chan struct{} // closed when run returns

	upstreamSkipped atomic.Uint64
	received        atomic.Uint64
	pool            sync.Pool // *[]byte message buffers
}

// HubStats are the hub's counters.
type HubStats struct {
	Clients         int    `json:"clients"`
	Received        uint64 `json:"received"`
	UpstreamSkipped uint64 `json:"upstream_skipped"`
	Sent            uint64 `json:"sent"`
	Skipped         uint64 `json:"skipped"`
}

func newHub(src flowquery.Reader, log *slog.Logger, interval time.Duration, maxBatch, budget int, history bool) *hub {
	return &hub{
		src:        src,
		log:        log,
		interval:   interval,
		maxBatch:   maxBatch,
		budget:     budget,
		history:    history,
		register:   make(chan *client),
		unregister: make(chan *client),
		subscribe:  make(chan subscribeReq),
		replayed:   make(chan replayDone),
		inbound:    make(chan item, inboundBuffer),
		statsReq:   make(chan chan HubStats),
		done:       make(chan struct{}),
	}
}

// getBuf returns an empty batch buffer of at most max bytes' capacity.
func (h *hub) getBuf(max int) []byte {
	if p, ok := h.pool.Get().(*[]byte); ok {
		if cap(*p) <= max {
			return (*p)[:0]
		}
		h.pool.Put(p)
	}
	return make([]byte, 0, min(64<<10, max))
}

func (h *hub) putBuf(b []byte) {
	if cap(b) > 4<<20 {
		return // an outsized replay batch; let it go
	}
	h.pool.Put(&b)
}

// run is the hub goroutine; it returns when ctx is done, after the
// upstream follow has ended and every client's send queue is closed.
func (h *hub) run(ctx context.Context) {
	clients := make(map[*client]struct{})
	var (
		upCancel context.CancelFunc
		upDone   chan error
		upRetry  time.Time
		lastUp   uint64
		lastStat time.Time
		sent     uint64
		skipped  uint64
	)
	startUpstream := func() {
		if upCancel != nil || len(clients) == 0 || time.Now().Before(upRetry) {
			return
		}
		uctx, cancel := context.WithCancel(ctx)
		upCancel, upDone = cancel, make(chan error, 1)
		go func() { upDone <- h.follow(uctx) }()
	}
	stopUpstream := func() {
		if upCancel == nil {
			return
		}
		upCancel()
		<-upDone
		upCancel, upDone = nil, nil
	}
	defer func() {
		defer close(h.done)
		stopUpstream()
		for c := range clients {
			close(c.send)
		}
	}()

	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return

		case c := <-h.register:
			clients[c] = struct{}{}
			startUpstream()

		case c := <-h.unregister:
			if _, ok := clients[c]; ok {
				delete(clients, c)
				sent += c.sent
				skipped += c.skipped
				close(c.send)
				if c.pending != nil {
					h.putBuf(c.pending)
				}
			}
			if len(clients) == 0 {
				stopUpstream()
			}

		case r := <-h.subscribe:
			if _, ok := clients[r.c]; !ok {
				continue
			}
			c := r.c
			if c.pending != nil {
				h.putBuf(c.pending)
				c.pending, c.pendingN = nil, 0
			}
			c.sub, c.filter, c.none, c.subscribed = r.sub, r.filter, r.none, true
			c.replaying, c.replayTil = r.replay, r.replayTil
			clear(c.held)
			c.held, c.heldBytes = c.held[:0], 0
			c.replayed = nil

		case d := <-h.replayed:
			c := d.c
			if _, ok := clients[c]; !ok || c.sub != d.sub || !c.replaying {
				continue
			}
			c.replaying = false
			c.replayed, c.replayedUntil = d.seen, time.Now().Add(dedupHold)
			for i := range c.held {
				if c.wasReplayed(&c.held[i].flow) {
					continue
				}
				h.add(c, &c.held[i])
			}
			clear(c.held)
			c.held, c.heldBytes = c.held[:0], 0

		case it := <-h.inbound:
			for c := range clients {
				if !c.subscribed || c.none || !c.filter.Match(&it.flow) {
					continue
				}
				if c.replaying {
					if cost := heldCost + len(it.json); len(c.held) < h.maxBatch && c.heldBytes+cost+int(c.queued.Load()) <= h.budget {
						c.held = append(c.held, it)
						c.heldBytes += cost
					} else {
						c.skipped++
					}
					continue
				}
				if c.replayed != nil && c.wasReplayed(&it.flow) {
					continue
				}
				h.add(c, &it)
			}

		case reply := <-h.statsReq:
			st := HubStats{Clients: len(clients), Received: h.received.Load(),
				UpstreamSkipped: h.upstreamSkipped.Load(), Sent: sent, Skipped: skipped}
			for c := range clients {
				st.Sent += c.sent
				st.Skipped += c.skipped
			}
			reply <- st

		case now := <-tick.C:
			if upDone != nil {
				select {
				case err := <-upDone:
					upCancel()
					upCancel, upDone = nil, nil
					upRetry = now.Add(upstreamRetry)
					h.log.Warn("following the flow source ended; retrying", "err", err, "in", upstreamRetry)
				default:
				}
			}
			startUpstream()
			// Flows the hub itself was too slow for may have been for
			// anyone: every subscriber is told it may have missed them.
			up := h.upstreamSkipped.Load()
			lost := up - lastUp
			lastUp = up
			status := now.Sub(lastStat) >= statusEvery
			if status {
				lastStat = now
			}
			for c := range clients {
				if c.subscribed {
					c.skipped += lost
				}
				if c.replayed != nil && now.After(c.replayedUntil) {
					c.replayed = nil
				}
				h.flush(c)
				if status {
					h.sendStatus(c, len(clients))
				}
			}
		}
	}
}

// heldCost is what holding one item costs besides its JSON (shared by
// every client that holds it, but counted for each).
const heldCost = int(unsafe.Sizeof(item{}))

// batchTail is room kept at the end of a batch for its closing
// `],"skipped":N}`.
const batchTail = 40

// add appends an encoded flow to c's pending batch, or counts it skipped
// when the batch is full or would outgrow the client's budget: the
// capacity of its pending batch and of the messages queued to it stay
// within h.budget bytes.
func (h *hub) add(c *client, it *item) {
	if c.pendingN >= h.maxBatch {
		c.skipped++
		return
	}
	room := h.budget - int(c.queued.Load())
	if c.pending == nil {
		const head = len(`{"type":"flows","sub":,"flows":[`) + 20
		if room < head+len(it.json)+batchTail {
			c.skipped++
			return
		}
		c.pending = append(h.getBuf(room), `{"type":"flows","sub":`...)
		c.pending = strconv.AppendUint(c.pending, c.sub, 10)
		c.pending = append(c.pending, `,"flows":[`...)
	} else if need := len(c.pending) + 1 + len(it.json) + batchTail; need > cap(c.pending) {
		newCap := min(max(2*cap(c.pending), need), room)
		if newCap < need {
			c.skipped++
			return
		}
		// The outgrown buffer is left to the collector, not pooled: a
		// client that stops reading grows its batch to its budget, and the
		// smaller buffers it outgrew on the way would sit in the pool
		// beside it, outside every client's budget.
		grown := append(make([]byte, 0, newCap), c.pending...)
		c.pending = grown
	}
	if c.pendingN > 0 {
		c.pending = append(c.pending, ',')
	}
	c.pending = append(c.pending, it.json...)
	c.pendingN++
}

// flush hands c's pending batch to its send queue; a full queue means a slow
// client, whose batch is skipped and counted.
func (h *hub) flush(c *client) {
	if c.pendingN == 0 {
		return
	}
	msg := append(c.pending, `],"skipped":`...)
	msg = strconv.AppendUint(msg, c.skipped, 10)
	msg = append(msg, '}')
	n := c.pendingN
	c.pending, c.pendingN = nil, 0
	c.queued.Add(int64(cap(msg)))
	select {
	case c.send <- msg:
		c.sent += uint64(n)
	default:
		c.queued.Add(-int64(cap(msg)))
		c.skipped += uint64(n)
		h.putBuf(msg)
	}
}

func (h *hub) sendStatus(c *client, clients int) {
	msg := append(make([]byte, 0, 192), `{"type":"status","clients":`...)
	msg = strconv.AppendInt(msg, int64(clients), 10)
	msg = append(msg, `,"history":`...)
	msg = strconv.AppendBool(msg, h.history)
	msg = append(msg, `,"received":`...)
	msg = strconv.AppendUint(msg, h.received.Load(), 10)
	msg = append(msg, `,"sent":`...)
	msg = strconv.AppendUint(msg, c.sent, 10)
	msg = append(msg, `,"skipped":`...)
	msg = strconv.AppendUint(msg, c.skipped, 10)
	msg = append(msg, `,"upstream_skipped":`...)
	msg = strconv.AppendUint(msg, h.upstreamSkipped.Load(), 10)
	msg = append(msg, '}')
	c.queued.Add(int64(cap(msg)))
	select {
	case c.send <- msg:
	default:
		c.queued.Add(-int64(cap(msg))) // the next one will do
	}
}

// follow runs the upstream follow of every new flow, encoding each flow
// once; it never blocks the source.
func (h *hub) follow(ctx context.Context) error {
	_, err := h.src.Follow(ctx, flowquery.Query{}, flowquery.Answer{Flow: func(f *api.Flow) error {
		h.received.Add(1)
		it := item{flow: *f, json: api.AppendJSON(make([]byte, 0, 1024), f)}
		select {
		case h.inbound <- it:
		default:
			h.upstreamSkipped.Add(1)
		}
		return nil
	}})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// stats asks the hub for its counters.
func (h *hub) stats(ctx context.Context) (HubStats, error) {
	reply := make(chan HubStats, 1)
	select {
	case h.statsReq <- reply:
	case <-ctx.Done():
		return HubStats{}, ctx.Err()
	}
	select {
	case st := <-reply:
		return st, nil
	case <-ctx.Done():
		return HubStats{}, ctx.Err()
	}
}

// wasReplayed reports whether a live flow was already sent by the client's
// replay: one stamped after the replay's end never was; one with an ID is
// looked up (each ID comes live once, so it is forgotten then); one without
// an ID (a source that gives none) is judged by its time alone.
func (c *client) wasReplayed(f *api.Flow) bool {
	if f.Time.After(c.replayTil) {
		return false
	}
	if f.UUID == ([16]byte{}) {
		return true
	}
	if _, ok := c.replayed[f.UUID]; ok {
		delete(c.replayed, f.UUID)
		return true
	}
	return false
}
