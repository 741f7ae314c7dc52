// Package sink owns the sink side of the collector's pipeline: the Sink
// interface that storage and export back ends (ClickHouse, OpenTelemetry, ...)
// implement, the bounded per-sink Queue that stands between the pipeline
// goroutine and a sink, the Fanout that offers every flow to every queue, and
// the Assembly that opens the sinks a command's flags ask for (each sink
// package is a Plugin) and runs and closes them in order.
//
// The pipeline never waits for a sink: Queue.Offer copies the flow into the
// queue's ring or, when the ring is full, drops it and counts the drop. Each
// queue drains its ring in batches on its own goroutine, so a slow or dead sink
// loses its own flows (counted) and nothing else. With a spool, Offer also
// writes the flow ahead to the queue's journal (a file mapped into memory),
// so that a crashed process loses nothing it accepted: the next Queue on the
// directory spools what the journal holds before anything else.
//
// At shutdown the Assembly stops in one order: the pipeline first (no flow
// comes any more), then the queues write what they hold, then their spools
// close, then each sink closes (OTLP's final export, ClickHouse's
// connections) within a timeout.
//
// The package must not know about any particular sink, nor about metrics
// formats: it exposes counts (Queue.Stats, Queue.IOStats, and Stats.Stage
// as the flow path's account) for others to export, and the
// list of sinks lives in collector/sink/sinks.
package sink
