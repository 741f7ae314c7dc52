package dashboards

import (
	"fmt"
	"strings"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
)

// The ClickHouse columns the dashboards' SQL reads. The store defines them
// (clickhouse.Columns); TestColumnsAreTheStores fails when one is renamed.
// Metric and label names are not listed here: queries use the metric
// model's constants (collector/sink/metrics) and the Prometheus exporter's
// (collector/sink/metrics/prom) directly.
const (
	tableFlows   = clickhouse.TableFlows
	tableFlows1m = clickhouse.TableFlows1m

	colTime             = "time"
	colNode             = "node"
	colEvent            = "event"
	colVerdict          = "verdict"
	colDropReason       = "drop_reason"
	colDirection        = "direction"
	colSrcNamespace     = "src_namespace"
	colSrcPod           = "src_pod"
	colDstNamespace     = "dst_namespace"
	colDstPod           = "dst_pod"
	colIngressDeniedBy  = "ingress_denied_by"
	colEgressDeniedBy   = "egress_denied_by"
	colIngressAllowedBy = "ingress_allowed_by"
	colEgressAllowedBy  = "egress_allowed_by"

	colMinute       = "minute"
	colSrcWorkload  = "src_workload"
	colDstWorkload  = "dst_workload"
	colRollupFlows  = "flows"
	colRollupDrops  = "drops"
	colRollupBytes  = "bytes"
	colRollupPacket = "packets"
)

// columnsUsed lists every column above by table, for the test.
var columnsUsed = map[string][]string{
	tableFlows: {colTime, colNode, colEvent, colVerdict, colDropReason, colDirection, colSrcNamespace, colSrcPod,
		colDstNamespace, colDstPod, colIngressDeniedBy, colEgressDeniedBy, colIngressAllowedBy, colEgressAllowedBy},
	tableFlows1m: {colMinute, colSrcNamespace, colSrcWorkload, colDstNamespace, colDstWorkload, colVerdict,
		colRollupFlows, colRollupDrops, colRollupBytes, colRollupPacket},
}

// verdictName is SQL turning a verdict column's number into the name flows
// carry in JSON (api.Verdict's String), for legends.
func verdictName(col string) string {
	var nums, names []string
	for v := api.VerdictUnknown; v <= api.VerdictAudit; v++ {
		nums = append(nums, fmt.Sprint(uint8(v)))
		names = append(names, "'"+v.String()+"'")
	}
	return fmt.Sprintf("transform(%s, [%s], [%s], 'VERDICT_UNKNOWN')",
		col, strings.Join(nums, ", "), strings.Join(names, ", "))
}

// dropReasonName is SQL naming a drop reason column's number.
func dropReasonName(col string) string {
	var nums, names []string
	for _, r := range []api.DropReason{api.DropReasonPolicyDenied, api.DropReasonPolicyDeny} {
		nums = append(nums, fmt.Sprint(uint16(r)))
		names = append(names, "'"+r.String()+"'")
	}
	return fmt.Sprintf("transform(%s, [%s], [%s], toString(%s))",
		col, strings.Join(nums, ", "), strings.Join(names, ", "), col)
}

// Numbers the SQL compares columns with, from the api's enums.
var (
	eventStart      = uint8(api.EventStart)
	verdictDropped  = uint8(api.VerdictDropped)
	verdictAudit    = uint8(api.VerdictAudit)
	verdictForwards = uint8(api.VerdictForwarded)
)

// bucket is SQL for the start of the panel interval that time column col
// falls in. The plugin's $__timeInterval(col) expands to toStartOfInterval,
// which ClickHouse before 19.x lacks; $__interval_s works everywhere.
func bucket(col string) string {
	return fmt.Sprintf("toDateTime(intDiv(toUInt32(%s), $__interval_s) * $__interval_s)", col)
}
