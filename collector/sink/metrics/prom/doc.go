// Package prom exports the metric model (collector/sink/metrics) to
// Prometheus: it declares each definition as a client_golang collector on a
// registry the daemon passes in (never the global default one), records
// into it, and serves the registry at /metrics. As a sink plugin (Plugin) it
// owns the --metrics flag.
//
// The package must not define metrics nor decide what a flow counts as:
// the model does; it only translates definitions and measurements into
// client_golang's.
package prom
