// Package otel owns Periscope's OpenTelemetry export: it builds an OTel SDK
// MeterProvider and LoggerProvider with OTLP exporters (gRPC or HTTP/protobuf,
// configured by Options and the standard OTEL_EXPORTER_OTLP_* variables),
// counts flows into the same metrics as the Prometheus package
// (collector/sink/metrics) as OTel instruments, and exports one OTLP log record
// per flow record.
//
// Exporter is a sink.Observer (Consume, for the metrics, on the pipeline
// goroutine) and a sink.Sink (Write, for the log records, behind a sink.Queue).
// Attribute names follow the OpenTelemetry semantic conventions where one
// exists (network.transport, source.address, k8s.namespace.name, ...) and are
// periscope.* otherwise. Every metric caps its attribute sets at
// metrics.Options.MaxSeries; beyond the cap measurements go to one series
// whose only attribute is otel.metric.overflow=true (the SDK's own convention),
// so totals stay exact while cardinality stays bounded.
//
// The package must not decide where flows come from nor serve anything: it
// only counts and exports what it is given.
package otel
