package prom

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// Exporter is the Prometheus exporter of the metric model: a
// metrics.Exporter over a registry.
type Exporter struct {
	reg prometheus.Registerer
}

// NewExporter returns an exporter that registers the model's metrics on reg.
func NewExporter(reg prometheus.Registerer) *Exporter { return &Exporter{reg: reg} }

// NewMetrics returns the metric model exported to reg.
func NewMetrics(reg prometheus.Registerer, opts metrics.Options) (*metrics.Metrics, error) {
	return metrics.New(opts, NewExporter(reg))
}

// Declare implements metrics.Exporter: a vector per recorded definition, one
// collector for the observed ones.
func (e *Exporter) Declare(defs []*metrics.Def, collect metrics.Collect) ([]metrics.Instrument, error) {
	insts := make([]metrics.Instrument, len(defs))
	observed := &observedCollector{descs: map[*metrics.Def]*prometheus.Desc{}, collect: collect}
	for i, d := range defs {
		if d.Observed {
			observed.descs[d] = prometheus.NewDesc(d.Name, d.Help, d.PromLabels(), nil)
			continue
		}
		inst, err := newInstrument(d)
		if err != nil {
			return nil, err
		}
		if err := e.reg.Register(inst.collector); err != nil {
			return nil, fmt.Errorf("register %s: %w", d.Name, err)
		}
		insts[i] = inst
	}
	if err := e.reg.Register(observed); err != nil {
		return nil, fmt.Errorf("register observed metrics: %w", err)
	}
	return insts, nil
}

// instrument is a recorded definition's vector.
type instrument struct {
	def       *metrics.Def
	collector prometheus.Collector
	series    func(lvs []string) (metrics.Recorder, error)
}

func newInstrument(d *metrics.Def) (*instrument, error) {
	labels := d.PromLabels()
	switch d.Kind {
	case metrics.KindCounter:
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.Name, Help: d.Help}, labels)
		return &instrument{def: d, collector: v, series: func(lvs []string) (metrics.Recorder, error) {
			c, err := v.GetMetricWithLabelValues(lvs...)
			return counter{c}, err
		}}, nil
	case metrics.KindHistogram:
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: d.Name, Help: d.Help, Buckets: d.Buckets}, labels)
		return &instrument{def: d, collector: v, series: func(lvs []string) (metrics.Recorder, error) {
			o, err := v.GetMetricWithLabelValues(lvs...)
			return observer{o}, err
		}}, nil
	}
	return nil, fmt.Errorf("%s: a recorded %s is not supported", d.Name, d.Kind)
}

// Series implements metrics.Instrument.
func (in *instrument) Series(values []metrics.LabelValue) (metrics.Recorder, error) {
	return in.series(in.def.PromValues(values))
}

// Overflow implements metrics.Instrument: every label is "overflow".
func (in *instrument) Overflow() metrics.Recorder {
	lvs := in.def.PromLabels()
	for i := range lvs {
		lvs[i] = metrics.OverflowValue
	}
	r, err := in.series(lvs)
	if err != nil {
		panic("prom: overflow label set rejected: " + err.Error()) // a bug: the label count is wrong
	}
	return r
}

type counter struct{ prometheus.Counter }

func (c counter) Record(v float64) { c.Add(v) }

type observer struct{ prometheus.Observer }

func (o observer) Record(v float64) { o.Observe(v) }

// observedCollector reads the observed metrics at scrape time.
type observedCollector struct {
	descs   map[*metrics.Def]*prometheus.Desc
	collect metrics.Collect
}

// Describe implements prometheus.Collector.
func (c *observedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *observedCollector) Collect(ch chan<- prometheus.Metric) {
	c.collect(func(d *metrics.Def, values []metrics.LabelValue, v float64) {
		desc, ok := c.descs[d]
		if !ok {
			return
		}
		vt := prometheus.CounterValue
		if d.Kind == metrics.KindGauge {
			vt = prometheus.GaugeValue
		}
		m, err := prometheus.NewConstMetric(desc, vt, v, d.PromValues(values)...)
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	})
}
