package dashboards

import (
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// ClickHouseQuery is a raw-SQL query of the grafana-clickhouse-datasource
// plugin (its CHSqlQuery), which the SDK does not ship.
type ClickHouseQuery struct {
	RefID      string                `json:"refId"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	EditorType string                `json:"editorType"` // "sql"
	// QueryType is how the plugin shapes the answer: "timeSeries" (a
	// DateTime column, string label columns and values, turned wide) or
	// "table".
	QueryType string `json:"queryType"`
	// Format is the same for the plugin's backend: 0 time series, 1 table.
	Format int    `json:"format"`
	RawSQL string `json:"rawSql"`
}

// The plugin's query types and formats.
const (
	chTimeSeries       = "timeSeries"
	chTable            = "table"
	chFormatTimeSeries = 0
	chFormatTable      = 1
)

// ImplementsDataqueryVariant implements variants.Dataquery.
func (ClickHouseQuery) ImplementsDataqueryVariant() {}

// DataqueryType implements variants.Dataquery: the plugin's id.
func (ClickHouseQuery) DataqueryType() string { return ClickHouseType }

// Validate implements variants.Dataquery.
func (ClickHouseQuery) Validate() error { return nil }

// Equals implements variants.Dataquery.
func (q ClickHouseQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(ClickHouseQuery)
	if !ok {
		return false
	}
	a, _ := json.Marshal(q)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}

// clickHouseQuery builds a ClickHouseQuery (a cog.Builder, for panels).
type clickHouseQuery struct{ q ClickHouseQuery }

var _ cog.Builder[variants.Dataquery] = (*clickHouseQuery)(nil)

// Build implements cog.Builder.
func (b *clickHouseQuery) Build() (variants.Dataquery, error) { return b.q, nil }

// chSeries is a time-series query of sql.
func chSeries(sql string) *clickHouseQuery {
	r := chRef()
	return &clickHouseQuery{ClickHouseQuery{Datasource: &r, EditorType: "sql",
		QueryType: chTimeSeries, Format: chFormatTimeSeries, RawSQL: sql}}
}

// chRows is a table query of sql.
func chRows(sql string) *clickHouseQuery {
	q := chSeries(sql)
	q.q.QueryType, q.q.Format = chTable, chFormatTable
	return q
}

// variantsDataquery shortens the SDK's query interface in signatures.
type variantsDataquery = variants.Dataquery
