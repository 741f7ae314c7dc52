// Package metrics owns Periscope's Prometheus metrics about flows: it counts
// connections, drops, policy verdicts, exact bytes and packets between
// endpoints, lost events, sink queues and HTTP golden signals, on a registry
// the daemon passes in (never the global default one), and serves them.
//
// Metrics.Consume is meant to run synchronously on the pipeline goroutine: it
// only increments counters, and after a label set's first flow it does not
// allocate. Every labelled family is capped at Options.MaxSeries label sets;
// beyond the cap, flows are counted in one series whose labels are all
// "overflow", so totals stay exact while cardinality stays bounded.
//
// The package must not do anything but count: no I/O except serving the
// registry, no knowledge of how flows are produced.
package metrics
