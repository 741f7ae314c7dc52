package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Panel sizes on Grafana's 24-column grid.
const (
	fullWidth  = 24
	halfWidth  = 12
	thirdWidth = 8
	statWidth  = 6
	graphH     = 8
	statH      = 4
	tableH     = 9
)

// refID names a panel's i-th query: A, B, C...
func refID(i int) string { return string(rune('A' + i)) }

// prom is a PromQL range query with a legend.
func prom(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promRef()).Expr(expr).LegendFormat(legend).Range()
}

// promInstant is an instant PromQL query, as a table.
func promInstant(expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promRef()).Expr(expr).Instant().
		Format(prometheus.PromQueryFormatTable)
}

// promTargets gives the queries their refIds.
func promTargets(qs []*prometheus.DataqueryBuilder) []cog.Builder[variantsDataquery] {
	out := make([]cog.Builder[variantsDataquery], len(qs))
	for i, q := range qs {
		out[i] = q.RefId(refID(i))
	}
	return out
}

// graph is a time-series panel of Prometheus queries.
func graph(title, desc, unit string, width uint32, qs ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Title(title).Description(desc).Unit(unit).
		Datasource(promRef()).Targets(promTargets(qs)).Span(width).Height(graphH).
		FillOpacity(10).Legend(common.NewVizLegendOptionsBuilder().
		ShowLegend(true).DisplayMode(common.LegendDisplayModeTable).Placement(common.LegendPlacementBottom).
		Calcs([]string{"mean", "max", "lastNotNull"}))
}

// single is a stat panel of one Prometheus query, its last value.
func single(title, desc, unit string, q *prometheus.DataqueryBuilder) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(desc).Unit(unit).
		Datasource(promRef()).Targets(promTargets([]*prometheus.DataqueryBuilder{q})).
		Span(statWidth).Height(statH).GraphMode(common.BigValueGraphModeArea).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// promTable is a table of instant Prometheus queries.
func promTable(title, desc, unit string, width uint32, qs ...*prometheus.DataqueryBuilder) *table.PanelBuilder {
	return table.NewPanelBuilder().Title(title).Description(desc).Unit(unit).
		Datasource(promRef()).Targets(promTargets(qs)).Span(width).Height(tableH)
}

// chTargets gives the queries their refIds.
func chTargets(qs []*clickHouseQuery) []cog.Builder[variantsDataquery] {
	out := make([]cog.Builder[variantsDataquery], len(qs))
	for i, q := range qs {
		q.q.RefID = refID(i)
		out[i] = q
	}
	return out
}

// chGraph is a time-series panel of ClickHouse queries.
func chGraph(title, desc, unit string, width uint32, qs ...*clickHouseQuery) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Title(title).Description(desc).Unit(unit).
		Datasource(chRef()).Targets(chTargets(qs)).Span(width).Height(graphH).
		FillOpacity(10).DrawStyle(common.GraphDrawStyleBars).Stacking(common.NewStackingConfigBuilder().
		Mode(common.StackingModeNormal))
}

// chTableOf is a table of a ClickHouse query.
func chTableOf(title, desc string, width uint32, q *clickHouseQuery) *table.PanelBuilder {
	return table.NewPanelBuilder().Title(title).Description(desc).Unit("short").
		Datasource(chRef()).Targets(chTargets([]*clickHouseQuery{q})).Span(width).Height(tableH)
}

// row starts a row of panels.
func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }
