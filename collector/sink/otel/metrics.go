package otel

import (
	"context"
	"fmt"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// scopeName is the instrumentation scope of Periscope's meters and loggers.
const scopeName = "github.com/periscope-dev/periscope/collector/sink/otel"

// NewMetrics returns the metric model (collector/sink/metrics) exported as
// OTel instruments on a meter of mp: the Prometheus metrics, named the OTel
// way (periscope.flows for periscope_flows_total, ...), with
// semantic-convention attribute names where there are some. opts are the
// model's, so one --metrics-options string configures both exports alike.
func NewMetrics(mp metric.MeterProvider, opts metrics.Options) (*metrics.Metrics, error) {
	meter := mp.Meter(scopeName, metric.WithInstrumentationVersion(version()))
	return metrics.New(opts, &meterExporter{meter: meter})
}

// meterExporter is the OpenTelemetry exporter of the metric model: a
// metrics.Exporter over a meter.
type meterExporter struct {
	meter metric.Meter
}

// Declare implements metrics.Exporter: synchronous instruments for the
// recorded definitions (one per name a definition has), observable ones
// read by one callback for the observed definitions.
func (e *meterExporter) Declare(defs []*metrics.Def, collect metrics.Collect) ([]metrics.Instrument, error) {
	insts := make([]metrics.Instrument, len(defs))
	observed := map[*metrics.Def]metric.Int64Observable{}
	var (
		observables []metric.Observable
		err         error
	)
	for i, d := range defs {
		if d.Observed {
			o, err := e.observable(d)
			if err != nil {
				return nil, err
			}
			observed[d] = o
			observables = append(observables, o)
			continue
		}
		inst := &instrument{def: d, byName: map[string]newSeries{}}
		for _, name := range d.OTelNames() {
			if inst.byName[name], err = e.newSeriesFunc(d, name); err != nil {
				return nil, err
			}
		}
		insts[i] = inst
	}
	// The registration lives as long as the meter provider: Shutdown ends it.
	_, err = e.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		collect(func(d *metrics.Def, values []metrics.LabelValue, v float64) {
			if inst, ok := observed[d]; ok {
				o.ObserveInt64(inst, int64(v), metric.WithAttributes(d.OTelAttrs(values)...))
			}
		})
		return nil
	}, observables...)
	if err != nil {
		return nil, fmt.Errorf("register metrics callback: %w", err)
	}
	return insts, nil
}

// observable creates an observed definition's instrument.
func (e *meterExporter) observable(d *metrics.Def) (metric.Int64Observable, error) {
	unit, desc := metric.WithUnit(d.Unit), metric.WithDescription(d.Help)
	var (
		o   metric.Int64Observable
		err error
	)
	switch d.Kind {
	case metrics.KindCounter:
		o, err = e.meter.Int64ObservableCounter(d.OTelName, unit, desc)
	case metrics.KindGauge:
		o, err = e.meter.Int64ObservableGauge(d.OTelName, unit, desc)
	default:
		err = fmt.Errorf("an observed %s is not supported", d.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", d.OTelName, err)
	}
	return o, nil
}

// newSeries makes the recorder of one attribute set; the options are built
// once, so recording allocates nothing of ours.
type newSeries func(set attribute.Set) metrics.Recorder

// newSeriesFunc creates the instrument name of a recorded definition.
func (e *meterExporter) newSeriesFunc(d *metrics.Def, name string) (newSeries, error) {
	unit, desc := metric.WithUnit(d.Unit), metric.WithDescription(d.Help)
	switch d.Kind {
	case metrics.KindCounter:
		c, err := e.meter.Int64Counter(name, unit, desc)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		return func(set attribute.Set) metrics.Recorder {
			return &counter{c: c, opts: []metric.AddOption{metric.WithAttributeSet(set)}}
		}, nil
	case metrics.KindHistogram:
		h, err := e.meter.Float64Histogram(name, unit, desc, metric.WithExplicitBucketBoundaries(d.Buckets...))
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		return func(set attribute.Set) metrics.Recorder {
			return &histogram{h: h, opts: []metric.RecordOption{metric.WithAttributeSet(set)}}
		}, nil
	}
	return nil, fmt.Errorf("create %s: a recorded %s is not supported", name, d.Kind)
}

type counter struct {
	c    metric.Int64Counter
	opts []metric.AddOption
}

func (c *counter) Record(v float64) { c.c.Add(context.Background(), int64(v), c.opts...) }

type histogram struct {
	h    metric.Float64Histogram
	opts []metric.RecordOption
}

func (h *histogram) Record(v float64) { h.h.Record(context.Background(), v, h.opts...) }

// instrument is a recorded definition's instruments, by name.
type instrument struct {
	def    *metrics.Def
	byName map[string]newSeries
}

// Series implements metrics.Instrument.
func (in *instrument) Series(values []metrics.LabelValue) (metrics.Recorder, error) {
	return in.byName[in.def.OTelInstrument(values)](attribute.NewSet(in.def.OTelAttrs(values)...)), nil
}

// Overflow implements metrics.Instrument: the SDK's overflow attribute on
// the definition's OTelName.
func (in *instrument) Overflow() metrics.Recorder {
	return in.byName[in.def.OTelName](overflowSet)
}
