package dashboards

import (
	"regexp"
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	promexp "github.com/periscope-dev/periscope/collector/sink/metrics/prom"
)

func TestColumnsAreTheStores(t *testing.T) {
	for table, cols := range columnsUsed {
		have := clickhouse.Columns(table)
		if have == nil {
			t.Errorf("the store has no table %s", table)
		}
		for _, c := range cols {
			if !slices.Contains(have, c) {
				t.Errorf("%s has no column %s (it has %v)", table, c, have)
			}
		}
	}
}

// metricNameRE finds the metric names a PromQL expression or variable
// query names: Periscope's and the process's.
var metricNameRE = regexp.MustCompile(`\b(?:periscope|process)_[a-z0-9_]+\b`)

func TestEveryMetricADashboardQueriesIsDefined(t *testing.T) {
	known := map[string]bool{promexp.ProcessCPUSecondsTotal: true, promexp.ProcessResidentMemoryBytes: true}
	for _, d := range metrics.Defs() {
		known[d.Name] = true
		if d.Kind == metrics.KindHistogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				known[d.Name+suffix] = true
			}
		}
	}
	used := 0
	for name, d := range loadDashboards(t) {
		for _, q := range queriesOf(name, d) {
			if q.datasource != PrometheusType {
				continue
			}
			for _, metric := range metricNameRE.FindAllString(q.text, -1) {
				used++
				if !known[metric] {
					t.Errorf("%s: %s is not a metric Periscope serves", q.where, metric)
				}
			}
		}
	}
	if used == 0 {
		t.Error("no dashboard names a metric")
	}
}
