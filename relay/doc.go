// Package relay joins many collectors into one: it speaks the collectors'
// HTTP API to each peer and serves the same API itself (GET /api/v1/flows,
// GET /api/v1/status, GET /healthz), so `periscope observe --server relay`
// works unchanged.
//
// Reading the peers' flows is a flowquery.Reader (Ring for their rings,
// History for their ClickHouse), which the relay's own HTTP API, the web UI
// and Hubble's API read through. A query is fanned out to every peer with
// the same parameters, the filter pushed down as chips when chips can say
// it and matched here otherwise. History answers are merged by time and
// first/last is applied across peers (or per peer, as hubble-relay
// counts); those of the peers' ClickHouse history are merged as they are
// read (each peer's comes in time order), never gathered; live answers (follow) are merged in time order within a bounded
// window: each flow is held for at most the window, flows are emitted in
// time order, and a flow older than one already emitted ("late") is emitted
// at once and counted. Peers that cannot be reached do not fail an answer:
// it is marked partial (see the X-Periscope-Partial header and trailer in
// Handler's documentation) and the relay keeps reconnecting with
// exponential backoff.
//
// The relay owns peer connections, the merge and its own HTTP API. It does
// not store flows, and it must not know about Hubble's gRPC API (package
// relay/hubble adapts the relay to it).
package relay
