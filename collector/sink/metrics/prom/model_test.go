package prom

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/metrics/metricstest"
)

func TestEveryMetricOfTheModelIsExportedWithItsLabels(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{})
	metricstest.Populate(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string][]string{} // label names by family
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			var names []string
			for _, lp := range s.GetLabel() {
				names = append(names, lp.GetName())
			}
			got[mf.GetName()] = names
		}
	}
	for _, d := range metrics.Defs() {
		names, ok := got[d.Name]
		if !ok {
			t.Errorf("%s is not exported", d.Name)
			continue
		}
		if want := slices.Sorted(slices.Values(d.PromLabels())); !slices.Equal(names, want) {
			t.Errorf("%s has labels %v, want %v", d.Name, names, want)
		}
	}
}

func TestTheExporterRefusesADefinitionItCannotExport(t *testing.T) {
	defs := []*metrics.Def{{Name: "periscope_test_gauge", Kind: metrics.KindGauge}} // a gauge recorded per flow
	if _, err := NewExporter(prometheus.NewRegistry()).Declare(defs, func(func(*metrics.Def, []metrics.LabelValue, float64)) {}); err == nil {
		t.Error("Declare accepted a recorded gauge")
	}
}
