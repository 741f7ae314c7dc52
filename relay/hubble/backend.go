package hubble

import (
	"context"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/relay"
)

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

// Backend is what the server serves: the flows of a flowquery.Reader, the
// status of the nodes behind it, the namespaces of their recent flows and
// their agent events.
type Backend interface {
	flowquery.Reader
	Status(ctx context.Context) Status
	// Namespaces lists the namespaces seen in recent flows, by cluster and
	// name (Hubble's GetNamespaces).
	Namespaces(ctx context.Context) ([]api.Namespace, error)
	// AgentEvents reads the agent events (Hubble's GetAgentEvents).
	AgentEvents() agentevent.Reader
}

// collectorBackend reads a collector's ring.
type collectorBackend struct {
	*ring.Ring
	c *collector.Collector
}

// NewCollectorBackend serves a collector's flow ring.
func NewCollectorBackend(c *collector.Collector) Backend {
	return &collectorBackend{Ring: c.Store(), c: c}
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

func (b *collectorBackend) Namespaces(ctx context.Context) ([]api.Namespace, error) {
	return b.c.Namespaces(ctx)
}

func (b *collectorBackend) AgentEvents() agentevent.Reader { return b.c.Events() }

// relayBackend reads a relay's merged view of its peers' rings.
type relayBackend struct {
	*relay.Reader
	r *relay.Relay
}

// NewRelayBackend serves a relay's merged view of its peers.
func NewRelayBackend(r *relay.Relay) Backend { return &relayBackend{Reader: r.Ring(), r: r} }

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

// Namespaces merges the peers' namespaces; a peer that does not answer is
// left out, as hubble-relay leaves it out.
func (b *relayBackend) Namespaces(ctx context.Context) ([]api.Namespace, error) {
	list, _ := b.r.Namespaces(ctx)
	return list, nil
}

func (b *relayBackend) AgentEvents() agentevent.Reader { return b.r.AgentEvents() }
