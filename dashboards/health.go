package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	m "github.com/periscope-dev/periscope/collector/sink/metrics"
	promexp "github.com/periscope-dev/periscope/collector/sink/metrics/prom"
)

// nodeHealth is the collector itself: events read and lost, the flow
// table's fill, the sinks' queues, spools and writes, CPU and memory.
func nodeHealth() *dashboard.DashboardBuilder {
	rate := func(series string) string { return fmt.Sprintf("rate(%s[$__rate_interval])", series) }
	perSink := func(series string) string { return fmt.Sprintf("sum by (%s, %s) (%s)", nodeLabel, m.LabelSink, series) }
	perSource := func(series string) string {
		return fmt.Sprintf("sum by (%s, %s) (%s)", nodeLabel, m.LabelSource, series)
	}
	sinkLegend := "{{" + nodeLabel + "}} {{" + m.LabelSink + "}}"
	sourceLegend := "{{" + nodeLabel + "}} {{" + m.LabelSource + "}}"
	chWrites := sel(m.SinkWriteDurationSeconds+"_bucket", onNode(), eq(m.LabelSink, clickhouse.SinkName))
	quantile := func(q float64) string {
		return fmt.Sprintf("histogram_quantile(%g, sum by (%s, le) (%s))", q, nodeLabel, rate(chWrites))
	}
	// The process metrics of collectors only (Prometheus may scrape others).
	collectorOnly := func(series string) string {
		return fmt.Sprintf("%s and on (%s, job) %s", series, nodeLabel, sel(m.EventsReadTotal, onNode()))
	}
	return dashboard.NewDashboardBuilder("Periscope / Node health").
		Uid("periscope-node-health").Tags([]string{"periscope"}).
		Description("The collector: events read and lost, flow-table fill, sink queues, spools and writes, CPU and memory.").
		Time("now-1h", "now").Refresh("30s").
		WithVariable(nodeVar(m.EventsReadTotal)).
		WithRow(row("Datapath")).
		WithPanel(graph("Events read/s", "Events read from each flow source (the datapath's ring buffer) per second.", "ops", thirdWidth,
			prom(perSource(rate(sel(m.EventsReadTotal, onNode()))), sourceLegend))).
		WithPanel(graph("Events lost/s", "Events lost before they became flow records (a full ring buffer) per second.", "ops", thirdWidth,
			prom(perSource(rate(sel(m.LostEventsTotal, onNode()))), sourceLegend))).
		WithPanel(graph("Flow-table fill", "Live entries of the flow table over its capacity; near 100% the table evicts flows.", "percentunit", thirdWidth,
			prom(fmt.Sprintf("%s / %s", sel(m.FlowTableEntries, onNode()), sel(m.FlowTableCapacity, onNode())), sourceLegend))).
		WithRow(row("Sinks")).
		WithPanel(graph("Queue depth", "Flows held in each sink's queue.", "short", thirdWidth,
			prom(perSink(sel(m.SinkQueueLength, onNode())), sinkLegend))).
		WithPanel(graph("Queue drops/s", "Flows each sink's full queue (or full spool) refused, per second.", "ops", thirdWidth,
			prom(perSink(rate(sel(m.SinkDroppedTotal, onNode()))), sinkLegend))).
		WithPanel(graph("Spool size", "Bytes each sink's on-disk spool holds while the sink cannot keep up.", "bytes", thirdWidth,
			prom(perSink(sel(m.SinkSpoolBytes, onNode())), sinkLegend))).
		WithPanel(graph("Flows written/s", "Flows each sink accepted, and lost after failed writes, per second.", "ops", halfWidth,
			prom(perSink(rate(sel(m.SinkWrittenTotal, onNode()))), "written "+sinkLegend),
			prom(perSink(rate(sel(m.SinkFailedTotal, onNode()))), "failed "+sinkLegend))).
		WithPanel(graph("ClickHouse write latency", "p50 and p99 of the time one batch write to ClickHouse took.", "s", halfWidth,
			prom(quantile(0.5), "p50 {{"+nodeLabel+"}}"),
			prom(quantile(0.99), "p99 {{"+nodeLabel+"}}"))).
		WithPanel(graph("ClickHouse write errors/s", "Failed batch writes to ClickHouse per second (each retry counts).", "ops", halfWidth,
			prom(fmt.Sprintf("sum by (%s) (%s)", nodeLabel, rate(sel(m.SinkWriteErrorsTotal, onNode(), eq(m.LabelSink, clickhouse.SinkName)))),
				"{{"+nodeLabel+"}}"))).
		WithRow(row("Process")).
		WithPanel(graph("Collector CPU", "CPU seconds the collector process used per second.", "percentunit", halfWidth,
			prom(collectorOnly(rate(sel(promexp.ProcessCPUSecondsTotal, onNode()))), "{{"+nodeLabel+"}}"))).
		WithPanel(graph("Collector RSS", "Resident memory of the collector process.", "bytes", halfWidth,
			prom(collectorOnly(sel(promexp.ProcessResidentMemoryBytes, onNode())), "{{"+nodeLabel+"}}")))
}
