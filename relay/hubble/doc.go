// Package hubble serves Hubble's Observer gRPC API (GetFlows, ServerStatus,
// GetNodes) over Periscope's flows, with the gRPC health check `hubble
// status` asks first, so the hubble CLI and other Hubble clients work
// against a Periscope collector or relay unchanged (cli_test.go runs the
// real CLI to show it).
//
// It owns the translation between Periscope and Hubble: api.Flow to
// flow.Flow and back, L7 records included (FlowToProto, FlowFromProto), and
// Hubble's FlowFilter lists to Periscope's
// filter semantics (CompileFilters). It reads flows through a small Backend
// interface; adapters for a collector (NewCollectorBackend) and a relay
// (NewRelayBackend) live here too. It must not own flow storage or peer
// connections.
package hubble
