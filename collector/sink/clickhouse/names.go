package clickhouse

// SinkName is the store's name as a sink: its queue's label in metrics
// (periscope_sink_*{sink="clickhouse"}).
const SinkName = "clickhouse"

// The tables and columns that readers of the database other than this
// package query (Grafana's dashboards): part of Periscope's interface, like
// metric names. Never rename one; add columns by migration.
const (
	// TableFlows holds every flow record, one row per record.
	TableFlows = tableFlows
	// TableFlows1m is the per-minute rollup of TableFlows (see migration 2).
	TableFlows1m = tableFlows1m
)

// rollupColumns are TableFlows1m's columns, in the order migration 2
// creates them.
var rollupColumns = []string{
	"minute", "src_namespace", "src_workload", "dst_namespace", "dst_workload", "verdict",
	"records", "flows", "ended", "drops", "packets", "bytes",
}

// Columns returns the column names of table (TableFlows or TableFlows1m),
// in the order the table has them; nil for another table.
func Columns(table string) []string {
	switch table {
	case TableFlows:
		names := make([]string, len(flowColumns))
		for i, c := range flowColumns {
			names[i] = c.name
		}
		return names
	case TableFlows1m:
		return append([]string(nil), rollupColumns...)
	}
	return nil
}
