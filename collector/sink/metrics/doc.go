// Package metrics owns Periscope's metric model: every metric about flows is
// defined here once (Def: its Prometheus and OpenTelemetry names, help, unit,
// kind, labels, and whether its label sets are capped), and Metrics counts
// flow records into it: connections, drops, policy verdicts, exact bytes and
// packets between endpoints, HTTP golden signals and DNS queries, responses
// and answer types (Hubble's dns metrics) from L7 records, lost
// events, sink queues. Exporters (collector/sink/metrics/prom for Prometheus,
// collector/sink/otel for OTLP) turn the definitions into their instruments
// and are handed the measurements, so the two cannot drift: a metric, a
// label or a label's value exists in both or is marked, in its Def, as one
// format's only.
//
// Metrics.Consume is meant to run synchronously on the pipeline goroutine: it
// only looks up cached series and records, and after a label set's first flow
// it does not allocate. Every capped metric keeps at most Options.MaxSeries
// label sets; beyond the cap, flows are counted in one overflow series, so
// totals stay exact while cardinality stays bounded.
//
// The names of metrics and labels are constants (names.go) that dashboards
// and alerts may import; they are part of Periscope's interface.
//
// The package must not serve, export or import an exporter's SDK or client:
// it names labels for both formats (OpenTelemetry's attribute keys and
// values are plain data) and records through the Exporter interface.
package metrics
