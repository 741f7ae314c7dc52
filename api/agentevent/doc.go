// Package agentevent owns Periscope's agent events, Hubble's AgentEvent:
// the agent started, a policy was updated or deleted, an endpoint was
// created or deleted. It holds the record (Event, numbered and named as
// Hubble's flow.AgentEventType), its wire form (one JSON object per line
// on GET /api/v1/agent-events, Handler), the Appender the parts that
// change the agent's state append through (the policy store, the
// collector for its endpoints), the Reader every consumer reads through
// (Hubble's GetAgentEvents, a relay reading its peers), and Log, the
// collector's bounded in-memory log, which is both.
//
// It must not know who appends, nor how a Reader's events travel (HTTP
// between a relay and its peers, gRPC to Hubble's clients).
package agentevent
