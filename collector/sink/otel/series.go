package otel

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// series caches the measurement option (a precomputed attribute set) of each
// key K of one metric, so that the hot path is one map lookup, and caps the
// keys at max: beyond it every new K is measured with overflowSet. It is the
// OTel twin of the Prometheus package's family.
type series[K comparable] struct {
	max   int
	attrs func(K) attribute.Set // called once per new key

	mu       sync.Mutex
	opts     map[K]metric.MeasurementOption
	overflow metric.MeasurementOption
}

func newSeries[K comparable](max int, attrs func(K) attribute.Set) *series[K] {
	return &series[K]{
		max:      max,
		attrs:    attrs,
		opts:     make(map[K]metric.MeasurementOption),
		overflow: metric.WithAttributeSet(overflowSet),
	}
}

// get returns the measurement option of key k.
func (s *series[K]) get(k K) metric.MeasurementOption {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.opts[k]; ok {
		return o
	}
	if len(s.opts) >= s.max {
		return s.overflow
	}
	o := metric.WithAttributeSet(s.attrs(k))
	s.opts[k] = o
	return o
}
