package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/common"

// The datasources the dashboards query, as the provisioning files
// (grafana/provisioning/datasources) create them: their uids are how panels
// name them.
const (
	PrometheusType = "prometheus"
	PrometheusUID  = "periscope-prometheus"
	ClickHouseType = "grafana-clickhouse-datasource"
	ClickHouseUID  = "periscope-clickhouse"
)

func ref(typ, uid string) common.DataSourceRef {
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

func promRef() common.DataSourceRef { return ref(PrometheusType, PrometheusUID) }
func chRef() common.DataSourceRef   { return ref(ClickHouseType, ClickHouseUID) }
