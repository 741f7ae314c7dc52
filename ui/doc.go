// Package ui owns Periscope's web UI: the embedded single-page app (plain
// JavaScript modules, CSS and HTML; no build step, nothing fetched at run
// time) and the WebSocket at /api/v1/ws that streams flows to it.
//
// One hub goroutine owns the connected clients and one upstream follow of its
// source, a flowquery.Reader (a collector's ring, a relay's Ring); replays
// and history ranges read Options.Source and Options.History too. It encodes each flow once (api.AppendJSON), matches it against
// every client's filter (a filter.Set, parsed once per subscription), and appends it to that client's pending batch; every
// batchInterval it hands each batch to the client's bounded send queue. A
// client whose queue is full is slow: its batch is skipped and counted, and
// the count travels in its next batch. Nothing a client does can block the
// hub, the source, or other clients.
//
// The package serves; it does not store flows, parse kernel events, or own
// the /api/v1/flows and /api/v1/status endpoints of the collector or relay
// (it reads them).
package ui
