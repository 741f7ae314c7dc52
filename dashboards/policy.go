package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/periscope-dev/periscope/api"
	m "github.com/periscope-dev/periscope/collector/sink/metrics"
)

// policyDashboard is what policies decide: drops, audits and allowed
// connections per policy and per endpoint, and the policy revisions.
func policyDashboard() *dashboard.DashboardBuilder {
	rate := func(series string) string { return fmt.Sprintf("rate(%s[$__rate_interval])", series) }
	scope := []string{onNode(), re(m.LabelPolicy, "$"+varPolicy), re(m.LabelEndpoint, "$"+varEndpoint)}
	matches := func(verdict api.Verdict) string {
		return sel(m.PolicyMatchesTotal, append(scope, eq(m.LabelAction, verdict.String()))...)
	}
	rev := sel(m.PolicyRevision, onNode())
	// The endpoint a decision is about: the destination of ingress, the
	// source of egress.
	endpoint := fmt.Sprintf("if(%[1]s = %[2]d, concat(%[3]s, '/', %[4]s), concat(%[5]s, '/', %[6]s))",
		colDirection, uint8(api.TrafficDirectionEgress), colSrcNamespace, colSrcPod, colDstNamespace, colDstPod)
	deciders := fmt.Sprintf("arrayConcat(%s, %s)", colIngressDeniedBy, colEgressDeniedBy)
	return dashboard.NewDashboardBuilder("Periscope / Policy").
		Uid("periscope-policy").Tags([]string{"periscope"}).
		Description("Drops, audits and allowed connections per policy and endpoint, and policy revisions.").
		Time("now-6h", "now").Refresh("30s").
		WithVariable(nodeVar(m.PolicyMatchesTotal)).
		WithVariable(promVar(varPolicy, "Policy", labelValues(sel(m.PolicyMatchesTotal, onNode()), m.LabelPolicy), "", true)).
		WithVariable(promVar(varEndpoint, "Endpoint",
			labelValues(sel(m.PolicyMatchesTotal, onNode(), re(m.LabelPolicy, "$"+varPolicy)), m.LabelEndpoint), "", true)).
		WithRow(row("Per policy (Prometheus)")).
		WithPanel(graph("Drops/s per policy", "Connections dropped per second, by deciding policy.", "cps", thirdWidth,
			prom(byPolicy(rate(matches(api.VerdictDropped))), "{{"+m.LabelPolicy+"}}"))).
		WithPanel(graph("Audits/s per policy", "Connections a policy would have dropped, forwarded because their endpoint is in audit mode, per second.", "cps", thirdWidth,
			prom(byPolicy(rate(matches(api.VerdictAudit))), "{{"+m.LabelPolicy+"}}"))).
		WithPanel(graph("Allowed/s per policy", "Connections allowed per second, by allowing policy.", "cps", thirdWidth,
			prom(byPolicy(rate(matches(api.VerdictForwarded))), "{{"+m.LabelPolicy+"}}"))).
		WithPanel(graph("Decisions/s per endpoint", "Policy decisions per second, by the endpoint the policy applies to and verdict.", "cps", halfWidth,
			prom(fmt.Sprintf("sum by (%s, %s) (%s)", m.LabelEndpoint, m.LabelAction, rate(sel(m.PolicyMatchesTotal, scope...))),
				"{{"+m.LabelEndpoint+"}} {{"+m.LabelAction+"}}"))).
		WithPanel(graph("Verdicts by match", "Policy decisions per second, by verdict, direction and match (allow rule, deny rule, or default deny).", "cps", halfWidth,
			prom(fmt.Sprintf("sum by (%s, %s, %s) (%s)", m.LabelAction, m.LabelDirection, m.LabelMatch,
				rate(sel(m.PolicyVerdictsTotal, onNode()))), "{{"+m.LabelAction+"}} {{"+m.LabelDirection+"}} {{"+m.LabelMatch+"}}"))).
		WithRow(row("Revisions")).
		WithPanel(single("Policy revision", "The revision of the policy in force; it grows by one with every change.", "none",
			prom(fmt.Sprintf("max(%s)", rev), "revision"))).
		WithPanel(single("Changes in range", "Policy changes over the time range.", "none",
			prom(fmt.Sprintf("sum(changes(%s[$__range]))", rev), "changes"))).
		WithPanel(graph("Revision over time", "The policy revision in force on each node: every step is a policy change.", "none", halfWidth,
			prom(fmt.Sprintf("max by (%s) (%s)", nodeLabel, rev), "{{"+nodeLabel+"}}"))).
		WithRow(row("History (ClickHouse)")).
		WithPanel(chGraph("Drops per policy", "Dropped connections per interval, by the deny policies that decided ((default deny): no rule allowed them).", "short", halfWidth,
			chSeries(fmt.Sprintf("SELECT "+bucket("%[1]s")+" AS time,\n"+
				"  arrayJoin(if(empty(%[2]s), ['(default deny)'], %[2]s)) AS policy, count() AS drops\n"+
				"FROM %[3]s\nWHERE $__timeFilter(%[1]s) AND %[4]s = %[5]d AND %[6]s = %[7]d\nGROUP BY time, policy\nORDER BY time",
				colTime, deciders, tableFlows, colEvent, eventStart, colVerdict, verdictDropped)))).
		WithPanel(chTableOf("Drops and audits per endpoint", "Connections dropped or audited over the time range, by the endpoint the policy applies to.", halfWidth,
			chRows(fmt.Sprintf("SELECT %[1]s AS endpoint, countIf(%[2]s = %[3]d) AS drops, countIf(%[2]s = %[4]d) AS audits\n"+
				"FROM %[5]s\nWHERE $__timeFilter(%[6]s) AND %[7]s = %[8]d AND %[2]s IN (%[3]d, %[4]d)\n"+
				"GROUP BY endpoint\nORDER BY drops + audits DESC\nLIMIT 20",
				endpoint, colVerdict, verdictDropped, verdictAudit, tableFlows, colTime, colEvent, eventStart))))
}
