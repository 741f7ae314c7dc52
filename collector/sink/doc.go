// Package sink owns the sink side of the collector's pipeline: the Sink
// interface that storage and export back ends (ClickHouse, OpenTelemetry, ...)
// implement, the bounded per-sink Queue that stands between the pipeline
// goroutine and a sink, and the Fanout that offers every flow to every queue.
//
// The pipeline never waits for a sink: Queue.Offer copies the flow into the
// queue's ring or, when the ring is full, drops it and counts the drop. Each
// queue drains its ring in batches on its own goroutine, so a slow or dead sink
// loses its own flows (counted) and nothing else.
//
// The package must not know about any particular sink, nor about metrics
// formats: it exposes counts (Queue.Stats) for others to export.
package sink
