package otel

import (
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/metrics/metricstest"
)

func TestEveryMetricOfTheModelIsExportedWithItsAttributes(t *testing.T) {
	m, collect := newManualMetrics(t, metrics.Options{})
	metricstest.Populate(m)
	got := collect()
	for _, d := range metrics.Defs() {
		var want []string
		for _, l := range d.Labels {
			if l.Key != "" {
				want = append(want, string(l.Key))
			}
		}
		slices.Sort(want)
		for _, name := range d.OTelNames() {
			pts, ok := got[name]
			if !ok || len(pts) == 0 {
				t.Errorf("%s (%s) is not exported", name, d.Name)
				continue
			}
			for attrs := range pts {
				var keys []string
				for kv := range strings.SplitSeq(attrs, ",") {
					if k, _, ok := strings.Cut(kv, "="); ok {
						keys = append(keys, k)
					}
				}
				if !slices.Equal(keys, want) {
					t.Errorf("%s has attributes %v, want %v", name, keys, want)
				}
			}
		}
	}
}
