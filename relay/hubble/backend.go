package hubble

import (
	"context"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/relay"
)

// Matcher selects flows; *Filters satisfies it.
type Matcher interface {
	Match(f *api.Flow) bool
}

// Query selects flows for a Backend.
type Query struct {
	// Filter selects flows; nil matches all.
	Filter Matcher
	// Chips, when ok is true, say the same as Filter in Periscope's chip
	// syntax, for backends that forward filters (a relay to its peers).
	Chips   []string
	ChipsOK bool
	// Since and Until bound flow times, inclusively; zero is unbounded.
	Since, Until time.Time
	// First and Last keep the first or last N matching flows; both zero
	// keeps all.
	First, Last int
}

// FlowSource is where the server reads flows. fn gets a flow valid only
// during the call.
type FlowSource interface {
	// Query calls fn, oldest first, for the stored flows q selects.
	Query(ctx context.Context, q Query, fn func(*api.Flow) error) error
	// Follow replays the flows q.Last or q.Since select, then calls fn for
	// new matching flows as they arrive, until ctx is done or fn fails.
	Follow(ctx context.Context, q Query, fn func(*api.Flow) error) error
}

// Status is what ServerStatus and GetNodes report.
type Status struct {
	NumFlows, MaxFlows, SeenFlows uint64
	Uptime                        time.Duration
	Version                       string
	// Relay says the backend joins nodes, so the node counts are reported.
	Relay bool
	Nodes []Node
}

// Node is one node behind the backend.
type Node struct {
	Name, Address, Version        string
	Connected                     bool
	Uptime                        time.Duration
	NumFlows, MaxFlows, SeenFlows uint64
}

// Backend is a FlowSource that can also report its status.
type Backend interface {
	FlowSource
	Status(ctx context.Context) Status
}

// collectorBackend reads a collector's store.
type collectorBackend struct {
	c     *collector.Collector
	store *collector.Store
}

// NewCollectorBackend serves a collector's flow ring.
func NewCollectorBackend(c *collector.Collector) Backend {
	return &collectorBackend{c: c, store: c.Store()}
}

func storeQuery(q Query) collector.Query {
	cq := collector.Query{Since: q.Since, Until: q.Until, First: q.First, Last: q.Last}
	if q.Filter != nil {
		cq.Filter = q.Filter
	}
	return cq
}

func (b *collectorBackend) Query(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	return b.store.Each(storeQuery(q), func(e *collector.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(&e.Flow)
	})
}

func (b *collectorBackend) Follow(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	_, err := b.store.Follow(ctx, storeQuery(q), collector.FollowOptions{}, func(e *collector.Entry) error {
		return fn(&e.Flow)
	})
	return err
}

func (b *collectorBackend) Status(context.Context) Status {
	st := b.c.Status()
	up := time.Duration(st.UptimeSeconds * float64(time.Second))
	n := Node{
		Name: st.NodeName, Version: st.Version, Connected: true, Uptime: up,
		NumFlows: uint64(st.FlowsStored), MaxFlows: uint64(st.RingSize), SeenFlows: st.FlowsSeen,
	}
	if a := b.c.Addr(); a != nil {
		n.Address = a.String()
	}
	return Status{
		NumFlows: n.NumFlows, MaxFlows: n.MaxFlows, SeenFlows: n.SeenFlows,
		Uptime: up, Version: st.Version, Nodes: []Node{n},
	}
}

// relayBackend reads a relay's merged view of its peers.
type relayBackend struct {
	r *relay.Relay
}

// NewRelayBackend serves a relay's merged view of its peers.
func NewRelayBackend(r *relay.Relay) Backend { return &relayBackend{r: r} }

func relayRequest(q Query, follow bool) relay.Request {
	// Like hubble-relay, a number is per node: `hubble observe --last 20`
	// through a relay shows up to 20 flows of each node.
	req := relay.Request{Since: q.Since, Until: q.Until, First: q.First, Last: q.Last, Follow: follow, PerPeer: true}
	switch {
	case q.Filter == nil:
	case q.ChipsOK:
		req.Chips = q.Chips
	default:
		req.Match = q.Filter
	}
	if !follow && req.First == 0 && req.Last == 0 && req.Since.IsZero() && req.Until.IsZero() {
		req.Since = time.Unix(0, 1) // everything, not the HTTP API's default last 20
	}
	return req
}

func (b *relayBackend) flows(ctx context.Context, q Query, follow bool, fn func(*api.Flow) error) error {
	_, err := b.r.Flows(ctx, relayRequest(q, follow), relay.FlowsOptions{}, func(it *relay.Item) error {
		f, err := it.Parse()
		if err != nil {
			return err
		}
		return fn(f)
	})
	return err
}

func (b *relayBackend) Query(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	return b.flows(ctx, q, false, fn)
}

func (b *relayBackend) Follow(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	return b.flows(ctx, q, true, fn)
}

func (b *relayBackend) Status(context.Context) Status {
	rs := b.r.Status()
	st := Status{
		Uptime:  time.Duration(rs.UptimeSeconds * float64(time.Second)),
		Version: rs.Version,
		Relay:   true,
	}
	for _, ns := range rs.Nodes {
		name := ns.NodeName
		if name == "" {
			name = ns.Address
		}
		n := Node{
			Name: name, Address: ns.Address, Version: ns.Version, Connected: ns.Connected,
			Uptime:   time.Duration(ns.UptimeSeconds * float64(time.Second)),
			NumFlows: uint64(ns.FlowsStored), MaxFlows: uint64(ns.RingSize), SeenFlows: ns.FlowsSeen,
		}
		if n.Connected {
			st.NumFlows += n.NumFlows
			st.MaxFlows += n.MaxFlows
			st.SeenFlows += n.SeenFlows
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st
}
