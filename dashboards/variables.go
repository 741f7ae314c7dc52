package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Template variables, as queries use them ($node).
const (
	varNode      = "node"
	varNamespace = "namespace"
	varWorkload  = "workload"
	varReporter  = "reporter"
	varPolicy    = "policy"
	varEndpoint  = "endpoint"
)

// nodeLabel is the label that tells collectors apart: Prometheus' own
// target label, which every scrape has.
const nodeLabel = "instance"

// allValue is what a variable set to All stands for in a regex matcher.
const allValue = ".*"

// promVar is a Prometheus query variable (label_values(...)); regex, when
// set, keeps its first group of each value; multi variables offer All.
func promVar(name, label, query, regex string, multi bool) *dashboard.QueryVariableBuilder {
	b := dashboard.NewQueryVariableBuilder(name).Label(label).Datasource(promRef()).
		Query(dashboard.StringOrMap{String: &query}).Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc)
	if regex != "" {
		b.Regex(regex)
	}
	if multi {
		b.Multi(true).IncludeAll(true).AllValue(allValue)
	}
	return b
}

// labelValues is Grafana's label_values(series, label) variable query.
func labelValues(series, label string) string {
	return fmt.Sprintf("label_values(%s, %s)", series, label)
}

// nodeVar chooses collectors by the nodeLabel of metric's series.
func nodeVar(metric string) *dashboard.QueryVariableBuilder {
	return promVar(varNode, "Node", labelValues(metric, nodeLabel), "", true)
}

// sel is a PromQL selector of metric with matchers.
func sel(metric string, matchers ...string) string {
	return metric + "{" + strings.Join(matchers, ", ") + "}"
}

// re is the matcher label=~"value".
func re(label, value string) string { return fmt.Sprintf("%s=~%q", label, value) }

// eq is the matcher label="value".
func eq(label, value string) string { return fmt.Sprintf("%s=%q", label, value) }

// onNode is the matcher of the chosen nodes.
func onNode() string { return re(nodeLabel, "$"+varNode) }
