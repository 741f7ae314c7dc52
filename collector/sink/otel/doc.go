// Package otel owns Periscope's OpenTelemetry export: it builds an OTel SDK
// MeterProvider and LoggerProvider with OTLP exporters (gRPC or HTTP/protobuf,
// configured by Options and the standard OTEL_EXPORTER_OTLP_* variables),
// exports the metric model (collector/sink/metrics) as OTel instruments, and
// exports one OTLP log record per flow record. As a sink plugin (Plugin) it
// owns the --otlp-* flags.
//
// Exporter is a sink.Observer (Consume, for the metrics, on the pipeline
// goroutine) and a sink.Sink (Write, for the log records, behind a sink.Queue).
// Attribute names follow the OpenTelemetry semantic conventions where one
// exists (network.transport, source.address, k8s.namespace.name,
// http.request.method, ...) and are periscope.* otherwise. The model caps
// each metric's attribute sets at metrics.Options.MaxSeries; beyond the cap
// measurements go to one series whose only attribute is
// otel.metric.overflow=true (the SDK's own convention), so totals stay exact
// while cardinality stays bounded.
//
// The package must not decide where flows come from, what a flow counts as
// (the model does), nor serve anything: it only exports what it is given.
package otel
