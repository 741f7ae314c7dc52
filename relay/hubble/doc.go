// Package hubble serves Hubble's Observer gRPC API (GetFlows, ServerStatus,
// GetNodes, GetNamespaces, GetAgentEvents) over Periscope's flows and agent
// events, with the gRPC health check `hubble status` asks first, so the
// hubble CLI and other Hubble clients work against a Periscope collector or
// relay unchanged (cli_test.go runs the real CLI to show it).
//
// It owns the translation between Periscope and Hubble: api.Flow to
// flow.Flow and back, L7 records included (FlowToProto, FlowFromProto),
// agentevent.Event to flow.AgentEvent (AgentEventToProto), Hubble's
// FlowFilter lists to a filter.Set (CompileFilters), field by field as
// filter.Kinds names them, and CEL expressions (experimental.cel_expression,
// with Hubble's variable _flow of type flow.Flow) as filter.Predicates
// evaluated on FlowToProto's flow. It reads flows through flowquery.Reader
// and events through agentevent.Reader only; a Backend adds the status of
// the nodes behind it and their namespaces, for a collector
// (NewCollectorBackend) or a relay (NewRelayBackend). It must not own flow
// storage or peer connections.
//
// A connection the datapath saw at two observation points of a node is one
// record (api.Flow.Other) and one Hubble flow by default; each point is a
// flow of its own, as Cilium's Hubble reports them, when Options.Points
// says so or a request's filter names an interface or a trace observation
// point (--type trace:to-endpoint: api.Flow.TracePoint); a number then
// counts points (points.go, pointlimit.go, docs/FLOWS.md).
package hubble
