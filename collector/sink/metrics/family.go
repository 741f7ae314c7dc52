package metrics

import (
	"fmt"
	"math"
	"sync"
)

// family caches the series of each label set K of one or more definitions
// that share their labels (bytes and packets do), in every exporter, so
// that the hot path is one map lookup with no allocation; and caps the label
// sets at max: beyond it every new K shares the overflow series.
type family[K comparable] struct {
	defs   []*Def
	insts  [][]Instrument // by def, then exporter
	max    int
	values func(K) []LabelValue // called once per new label set

	mu       sync.Mutex
	series   map[K][]fan // by def
	overflow []fan
}

// newFamily makes the family of defs; m has declared them to its exporters.
func newFamily[K comparable](m *Metrics, values func(K) []LabelValue, defs ...*Def) *family[K] {
	f := &family[K]{defs: defs, max: math.MaxInt, values: values, series: make(map[K][]fan)}
	if defs[0].Capped {
		f.max = m.opts.MaxSeries
	}
	for _, d := range defs {
		f.insts = append(f.insts, m.instruments[d])
	}
	return f
}

// get returns, by definition, the series of label set k.
func (f *family[K]) get(k K) []fan {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.series[k]; ok {
		return s
	}
	if len(f.series) < f.max {
		if s, ok := f.newSeries(k); ok {
			f.series[k] = s
			return s
		}
	}
	if f.overflow == nil {
		f.overflow = make([]fan, len(f.defs))
		for i, insts := range f.insts {
			for _, inst := range insts {
				f.overflow[i] = append(f.overflow[i], inst.Overflow())
			}
		}
	}
	return f.overflow
}

// newSeries asks every exporter for k's series; false when one refuses a
// value (such as invalid UTF-8 for Prometheus): k is then counted as
// overflow rather than lost.
func (f *family[K]) newSeries(k K) ([]fan, bool) {
	vals := f.values(k)
	s := make([]fan, len(f.defs))
	for i, insts := range f.insts {
		if len(vals) != len(f.defs[i].Labels) {
			panic(fmt.Sprintf("metrics: %s has %d labels, given %d values", f.defs[i].Name, len(f.defs[i].Labels), len(vals)))
		}
		for _, inst := range insts {
			r, err := inst.Series(vals)
			if err != nil {
				return nil, false
			}
			s[i] = append(s[i], r)
		}
	}
	return s, true
}
