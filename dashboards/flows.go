package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	m "github.com/periscope-dev/periscope/collector/sink/metrics"
)

// flowsAndVerdicts is connections and traffic by verdict: live from
// Prometheus, the long range from ClickHouse's rollup and flows.
func flowsAndVerdicts() *dashboard.DashboardBuilder {
	rate := func(series string) string { return fmt.Sprintf("rate(%s[$__rate_interval])", series) }
	flows := sel(m.FlowsTotal, onNode())
	bytes := sel(m.BytesTotal, onNode())
	packets := sel(m.PacketsTotal, onNode())
	pair := "{{" + m.LabelSource + "}} → {{" + m.LabelDestination + "}}"
	return dashboard.NewDashboardBuilder("Periscope / Flows and verdicts").
		Uid("periscope-flows").Tags([]string{"periscope"}).
		Description("Connections, traffic and drops: live from Prometheus, history from ClickHouse.").
		Time("now-6h", "now").Refresh("30s").
		WithVariable(nodeVar(m.FlowsTotal)).
		WithRow(row("Live (Prometheus)")).
		WithPanel(graph("Connections/s by verdict", "New connections per second (flow records of kind start), by verdict.", "cps", halfWidth,
			prom(fmt.Sprintf("sum by (%s) (%s)", m.LabelVerdict, rate(flows)), "{{"+m.LabelVerdict+"}}"))).
		WithPanel(graph("Connections/s by protocol", "New connections per second, by IP protocol and version.", "cps", halfWidth,
			prom(fmt.Sprintf("sum by (%s, %s) (%s)", m.LabelProtocol, m.LabelIPVersion, rate(flows)),
				"{{"+m.LabelProtocol+"}} {{"+m.LabelIPVersion+"}}"))).
		WithPanel(graph("Bytes/s, top talkers", "Bytes per second sent between endpoints (the metrics' source and destination contexts), the 10 busiest pairs.", "Bps", halfWidth,
			prom(fmt.Sprintf("topk(10, sum by (%s, %s) (%s))", m.LabelSource, m.LabelDestination, rate(bytes)), pair))).
		WithPanel(graph("Packets/s, top talkers", "Packets per second sent between endpoints, the 10 busiest pairs.", "pps", halfWidth,
			prom(fmt.Sprintf("topk(10, sum by (%s, %s) (%s))", m.LabelSource, m.LabelDestination, rate(packets)), pair))).
		WithPanel(graph("Drops/s by reason", "Dropped connections per second, by drop reason and direction.", "cps", halfWidth,
			prom(fmt.Sprintf("sum by (%s, %s) (%s)", m.LabelReason, m.LabelDirection, rate(sel(m.DropsTotal, onNode()))),
				"{{"+m.LabelReason+"}} {{"+m.LabelDirection+"}}"))).
		WithPanel(graph("Drops/s by policy", "Dropped connections per second, by the policy that decided (default deny: no rule allowed it).", "cps", halfWidth,
			prom(byPolicy(rate(sel(m.PolicyMatchesTotal, onNode(), eq(m.LabelAction, "DROPPED")))), "{{"+m.LabelPolicy+"}}"))).
		WithPanel(promTable("Top talkers over the range", "Bytes sent between endpoints over the time range, the 10 busiest pairs.", "bytes", fullWidth,
			promInstant(fmt.Sprintf("topk(10, sum by (%s, %s) (increase(%s[$__range])))", m.LabelSource, m.LabelDestination, bytes)))).
		WithRow(row("History (ClickHouse)")).
		WithPanel(chGraph("Connections by verdict", "Connections started per interval, by verdict, from the per-minute rollup.", "short", halfWidth,
			chSeries(fmt.Sprintf("SELECT "+bucket("%[1]s")+" AS time, %[2]s AS verdict, sum(%[3]s) AS connections\n"+
				"FROM %[4]s\nWHERE $__timeFilter(%[1]s)\nGROUP BY time, verdict\nORDER BY time",
				colMinute, verdictName(colVerdict), colRollupFlows, tableFlows1m)))).
		WithPanel(chGraph("Bytes by verdict", "Bytes of the connections that ended per interval (both ways), by verdict, from the per-minute rollup.", "bytes", halfWidth,
			chSeries(fmt.Sprintf("SELECT "+bucket("%[1]s")+" AS time, %[2]s AS verdict, sum(%[3]s) AS bytes\n"+
				"FROM %[4]s\nWHERE $__timeFilter(%[1]s)\nGROUP BY time, verdict\nORDER BY time",
				colMinute, verdictName(colVerdict), colRollupBytes, tableFlows1m)))).
		WithPanel(chGraph("Drops by reason", "Dropped connections per interval, by drop reason.", "short", halfWidth,
			chSeries(fmt.Sprintf("SELECT "+bucket("%[1]s")+" AS time, %[2]s AS reason, count() AS drops\n"+
				"FROM %[3]s\nWHERE $__timeFilter(%[1]s) AND %[4]s = %[5]d AND %[6]s = %[7]d\nGROUP BY time, reason\nORDER BY time",
				colTime, dropReasonName(colDropReason), tableFlows, colEvent, eventStart, colVerdict, verdictDropped)))).
		WithPanel(chTableOf("Top dropped pairs", "Source and destination workloads with the most dropped connections over the time range.", halfWidth,
			chRows(fmt.Sprintf("SELECT concat(%[1]s, '/', %[2]s) AS source, concat(%[3]s, '/', %[4]s) AS destination, sum(%[5]s) AS dropped\n"+
				"FROM %[6]s\nWHERE $__timeFilter(%[7]s) AND %[5]s > 0\nGROUP BY source, destination\nORDER BY dropped DESC\nLIMIT 10",
				colSrcNamespace, colSrcWorkload, colDstNamespace, colDstWorkload, colRollupDrops, tableFlows1m, colMinute)))).
		WithPanel(chTableOf("Top talkers", "Source and destination workloads that exchanged the most bytes over the time range (connections that ended).", fullWidth,
			chRows(fmt.Sprintf("SELECT concat(%[1]s, '/', %[2]s) AS source, concat(%[3]s, '/', %[4]s) AS destination,\n"+
				"  sum(%[5]s) AS sent_bytes, sum(%[6]s) AS sent_packets, sum(%[7]s) AS connections\n"+
				"FROM %[8]s\nWHERE $__timeFilter(%[9]s)\nGROUP BY source, destination\nORDER BY sent_bytes DESC\nLIMIT 10",
				colSrcNamespace, colSrcWorkload, colDstNamespace, colDstWorkload, colRollupBytes, colRollupPacket,
				colRollupFlows, tableFlows1m, colMinute))))
}

// byPolicy sums expr by policy, naming the default deny (no policy label).
func byPolicy(expr string) string {
	return fmt.Sprintf(`label_replace(sum by (%[1]s) (%[2]s), "%[1]s", "(default deny)", "%[1]s", "")`, m.LabelPolicy, expr)
}
