package metrics

import "sync"

// overflowValue labels the series that counts whatever lies beyond a
// family's cap.
const overflowValue = "overflow"

// vec is a client_golang metric vector (CounterVec, HistogramVec, ...).
type vec[M any] interface {
	GetMetricWithLabelValues(lvs ...string) (M, error)
}

// family caches the child metric of each label set K of a vector so that the
// hot path is one map lookup with no allocation, and caps the label sets at
// max: beyond it every new K shares one series labelled "overflow".
type family[K comparable, M any] struct {
	vec    vec[M]
	max    int
	labels func(K) []string // called once per new label set
	nLabel int

	mu       sync.Mutex
	series   map[K]M
	overflow *M
}

func newFamily[K comparable, M any](v vec[M], max, nLabel int, labels func(K) []string) *family[K, M] {
	return &family[K, M]{vec: v, max: max, nLabel: nLabel, labels: labels, series: make(map[K]M)}
}

// get returns the metric of label set k.
func (f *family[K, M]) get(k K) M {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.series[k]; ok {
		return m
	}
	if len(f.series) < f.max {
		// An error means a label value client_golang rejects (invalid UTF-8):
		// count it as overflow rather than lose it.
		if m, err := f.vec.GetMetricWithLabelValues(f.labels(k)...); err == nil {
			f.series[k] = m
			return m
		}
	}
	if f.overflow == nil {
		lvs := make([]string, f.nLabel)
		for i := range lvs {
			lvs[i] = overflowValue
		}
		m, err := f.vec.GetMetricWithLabelValues(lvs...)
		if err != nil {
			panic("metrics: overflow label set rejected: " + err.Error()) // a bug: nLabel is wrong
		}
		f.overflow = &m
	}
	return *f.overflow
}
