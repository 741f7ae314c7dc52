// Package envoy runs the node's one Envoy and keeps it running: it writes
// the bootstrap (node id, the xDS cluster over the collector's Unix
// socket, the admin address on loopback: nothing else, every listener,
// route and cluster comes over ADS), starts the binary, logs its output
// through slog, restarts it with exponential backoff when it exits, and
// stops it (SIGTERM, then SIGKILL) when its context ends.
//
// It must not build Envoy configuration beyond the bootstrap (package
// proxy/xds does) nor know which ports are redirected.
package envoy
