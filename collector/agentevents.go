package collector

import (
	"github.com/periscope-dev/periscope/api/agentevent"
)

// Events is the collector's log of agent events: what GET
// /api/v1/agent-events and Hubble's GetAgentEvents read, and where the
// policy store appends its changes (agentevent.Appender).
func (c *Collector) Events() *agentevent.Log { return c.events }

// announce appends the events of a start: the agent started, and each
// endpoint of the registry was created (the registry's endpoints are
// declared for the run).
func (c *Collector) announce() {
	c.events.Append(agentevent.Event{Type: agentevent.AgentStarted, Start: c.started})
	for _, e := range c.Registry().Endpoints() {
		c.events.Append(endpointEvent(agentevent.EndpointCreated, e))
	}
}

// endpointEvent is the agent event of an endpoint created or deleted.
func endpointEvent(typ agentevent.Type, e EndpointStatus) agentevent.Event {
	return agentevent.Event{Type: typ, Endpoint: &agentevent.Endpoint{
		ID: uint64(e.IfIndex), Labels: e.Labels, PodName: e.Name, Namespace: e.Namespace,
	}}
}
