package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	m "github.com/periscope-dev/periscope/collector/sink/metrics"
)

// goldenSignals is the HTTP golden signals per workload: request rate,
// error ratio and latency percentiles of the responders (the destination
// label), from L7 records. Workloads are the metrics' destination context:
// run the collector with --metrics-options
// 'source_context=workload;destination_context=workload' (with the
// namespace context, workloads are namespaces).
func goldenSignals() *dashboard.DashboardBuilder {
	http := sel(m.HTTPRequestsTotal, onNode())
	scope := []string{onNode(), re(m.LabelDestination, "$"+varWorkload),
		re(m.LabelDestination, "${"+varNamespace+"}(/.*)?"), re(m.LabelReporter, "$"+varReporter)}
	reqs := sel(m.HTTPRequestsTotal, scope...)
	errs := sel(m.HTTPRequestsTotal, append(scope, re(m.LabelStatus, "5.."))...)
	buckets := sel(m.HTTPRequestDurationSeconds+"_bucket", scope...)
	rate := func(series string) string { return fmt.Sprintf("rate(%s[$__rate_interval])", series) }
	by := func(labels, expr string) string { return fmt.Sprintf("sum by (%s) (%s)", labels, expr) }
	quantile := func(q float64, labels string) string {
		return fmt.Sprintf("histogram_quantile(%g, sum by (%s) (%s))", q, labels, rate(buckets))
	}
	// A workload with no 5xx has ratio 0, not no value.
	ratio := fmt.Sprintf("(%[1]s or %[2]s * 0) / %[2]s",
		by(m.LabelDestination, rate(errs)), by(m.LabelDestination, rate(reqs)))
	return dashboard.NewDashboardBuilder("Periscope / Golden signals").
		Uid("periscope-golden-signals").Tags([]string{"periscope"}).
		Description("HTTP request rate, error ratio and latency of each workload, from L7 records.").
		Time("now-1h", "now").Refresh("30s").
		WithVariable(nodeVar(m.HTTPRequestsTotal)).
		WithVariable(promVar(varNamespace, "Namespace", labelValues(http, m.LabelDestination), `/^([^\/]+)/`, true)).
		WithVariable(promVar(varWorkload, "Workload",
			labelValues(sel(m.HTTPRequestsTotal, onNode(), re(m.LabelDestination, "${"+varNamespace+"}(/.*)?")), m.LabelDestination), "", true)).
		WithVariable(promVar(varReporter, "Reported by", labelValues(http, m.LabelReporter), "", false).
			Description("client: the requester's side reported the exchange; server: the responder's. Choose one, or exchanges both sides report count twice.")).
		WithRow(row("Overview")).
		WithPanel(single("Requests/s", "HTTP requests per second to the chosen workloads.", "reqps",
			prom("sum("+rate(reqs)+")", "requests/s"))).
		WithPanel(single("Error ratio", "Share of responses with a 5xx status.", "percentunit",
			prom(fmt.Sprintf("(sum(%s) or vector(0)) / sum(%s)", rate(errs), rate(reqs)), "5xx"))).
		WithPanel(single("p99 latency", "99th percentile of the time from request to response.", "s",
			prom(quantile(0.99, "le"), "p99"))).
		WithPanel(single("Workloads", "Workloads that answered requests.", "none",
			prom(fmt.Sprintf("count(%s)", by(m.LabelDestination, rate(reqs))), "workloads"))).
		WithRow(row("Per workload")).
		WithPanel(graph("Request rate", "HTTP requests per second, by responding workload.", "reqps", halfWidth,
			prom(by(m.LabelDestination, rate(reqs)), "{{"+m.LabelDestination+"}}"))).
		WithPanel(graph("Error ratio", "Share of 5xx responses, by responding workload.", "percentunit", halfWidth,
			prom(ratio, "{{"+m.LabelDestination+"}}"))).
		WithPanel(graph("Latency percentiles", "p50, p90 and p99 of the time from request to response, by responding workload.", "s", fullWidth,
			prom(quantile(0.5, m.LabelDestination+", le"), "p50 {{"+m.LabelDestination+"}}"),
			prom(quantile(0.9, m.LabelDestination+", le"), "p90 {{"+m.LabelDestination+"}}"),
			prom(quantile(0.99, m.LabelDestination+", le"), "p99 {{"+m.LabelDestination+"}}"))).
		WithPanel(graph("Requests by status", "HTTP requests per second, by response status (0: unknown).", "reqps", halfWidth,
			prom(by(m.LabelStatus, rate(reqs)), "{{"+m.LabelStatus+"}}"))).
		WithPanel(graph("Requests by method", "HTTP requests per second, by method.", "reqps", halfWidth,
			prom(by(m.LabelMethod, rate(reqs)), "{{"+m.LabelMethod+"}}"))).
		WithPanel(promTable("Callers", "Requests over the time range, by calling (source) and responding (destination) workload.", "none", fullWidth,
			promInstant(fmt.Sprintf("topk(20, sum by (%s, %s) (increase(%s[$__range])))", m.LabelSource, m.LabelDestination, reqs))))
}
