package metrics

import (
	"strings"
	"testing"
)

func TestDefinitionsNameTheirUnitsAndAreUnique(t *testing.T) {
	seen := map[string]string{}
	claim := func(name, by string) {
		if other, ok := seen[name]; ok {
			t.Errorf("%s is the name of %s and of %s", name, other, by)
		}
		seen[name] = by
	}
	for _, d := range Defs() {
		claim(d.Name, d.Name)
		for _, n := range d.OTelNames() {
			claim(n, d.Name)
		}
		if !strings.HasPrefix(d.Name, "periscope_") || d.Help == "" || d.Unit == "" {
			t.Errorf("%s: want a periscope_ name, a help and a unit", d.Name)
		}
		switch {
		case d.Kind == KindCounter && !strings.HasSuffix(d.Name, "_total"):
			t.Errorf("counter %s does not end in _total", d.Name)
		case d.Kind != KindCounter && strings.HasSuffix(d.Name, "_total"):
			t.Errorf("%s %s ends in _total", d.Kind, d.Name)
		case d.Kind == KindHistogram && (!strings.HasSuffix(d.Name, "_seconds") || d.Unit != "s" || len(d.Buckets) == 0):
			t.Errorf("histogram %s: want seconds and buckets", d.Name)
		case d.Kind == KindGauge && !d.Observed:
			t.Errorf("gauge %s is not observed", d.Name)
		}
		if d.Observed == d.Capped {
			t.Errorf("%s: recorded metrics are capped, observed ones not", d.Name)
		}
		instrumentLabels := 0
		for _, l := range d.Labels {
			if l.Name == "" && l.Key == "" && len(l.Instruments) == 0 {
				t.Errorf("%s has a label no exporter shows", d.Name)
			}
			if len(l.Instruments) > 0 {
				instrumentLabels++
			}
		}
		if instrumentLabels > 1 {
			t.Errorf("%s: %d labels choose the instrument, at most one may", d.Name, instrumentLabels)
		}
	}
}
