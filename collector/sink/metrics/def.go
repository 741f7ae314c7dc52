package metrics

import (
	"maps"
	"slices"

	"go.opentelemetry.io/otel/attribute"
)

// Kind is how a metric's value behaves.
type Kind uint8

// Kinds.
const (
	// KindCounter only grows: a count of flows, bytes, requests.
	KindCounter Kind = iota + 1
	// KindGauge goes up and down: a queue's length. Gauges are Observed.
	KindGauge
	// KindHistogram is a distribution of recorded values (Def.Buckets).
	KindHistogram
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "unknown"
}

// Def defines one metric for every exporter.
type Def struct {
	// Name is the Prometheus name, e.g. periscope_flows_total.
	Name string
	// OTelName is the OpenTelemetry instrument name, e.g. periscope.flows.
	// With a Label that has Instruments, it is the instrument of the
	// values that have none of their own.
	OTelName string
	// Help describes the metric (Prometheus HELP, OTel description).
	Help string
	// Unit is the UCUM unit OpenTelemetry carries: "{flow}", "By", "s".
	// Prometheus names carry their unit instead.
	Unit string
	Kind Kind
	// Observed metrics are read when an exporter collects (queue lengths,
	// lost-event counters), not recorded per flow.
	Observed bool
	// Labels are the metric's labels, in the order their values are given.
	Labels []Label
	// Capped metrics keep at most Options.MaxSeries label sets; beyond it
	// they record into one overflow series. Observed metrics are not capped:
	// their label sets are few and fixed (one per sink, per source).
	Capped bool
	// Buckets are a histogram's upper bounds.
	Buckets []float64
}

// Label is one label of a metric, named for each exporter.
type Label struct {
	// Name is the Prometheus label name; "" when the label is
	// OpenTelemetry's only.
	Name string
	// Key is the OpenTelemetry attribute key; "" when the label is
	// Prometheus' only or chooses the instrument (Instruments).
	Key attribute.Key
	// Instruments, when set, make the label's value choose the
	// OpenTelemetry instrument instead of being an attribute: value (its
	// Prometheus form) → instrument name; other values go to Def.OTelName.
	// The semantic conventions split HTTP durations this way
	// (http.server.request.duration, http.client.request.duration).
	Instruments map[string]string
}

// LabelValue is one label's value in each exporter's form.
type LabelValue struct {
	// Prom is the Prometheus label value.
	Prom string
	// OTel is the OpenTelemetry attribute value; the zero Value (type
	// INVALID) leaves the attribute out.
	OTel attribute.Value
}

// str is a label value written alike in both forms.
func str(s string) LabelValue { return LabelValue{Prom: s, OTel: attribute.StringValue(s)} }

// OTelAttrs returns the OpenTelemetry attributes of a series of d.
func (d *Def) OTelAttrs(values []LabelValue) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, len(values))
	for i, l := range d.Labels {
		if l.Key != "" && values[i].OTel.Type() != attribute.INVALID {
			kvs = append(kvs, attribute.KeyValue{Key: l.Key, Value: values[i].OTel})
		}
	}
	return kvs
}

// PromLabels returns the Prometheus label names of d.
func (d *Def) PromLabels() []string {
	var names []string
	for _, l := range d.Labels {
		if l.Name != "" {
			names = append(names, l.Name)
		}
	}
	return names
}

// PromValues returns the Prometheus label values of a series of d, in
// PromLabels' order.
func (d *Def) PromValues(values []LabelValue) []string {
	lvs := make([]string, 0, len(values))
	for i, l := range d.Labels {
		if l.Name != "" {
			lvs = append(lvs, values[i].Prom)
		}
	}
	return lvs
}

// OTelNames returns every OpenTelemetry instrument name of d: OTelName,
// then those its Instruments label chooses.
func (d *Def) OTelNames() []string {
	names := []string{d.OTelName}
	if l := d.instrumentLabel(); l >= 0 {
		for _, v := range slices.Sorted(maps.Keys(d.Labels[l].Instruments)) {
			names = append(names, d.Labels[l].Instruments[v])
		}
	}
	return names
}

// OTelInstrument returns the OpenTelemetry instrument name of a series of
// d.
func (d *Def) OTelInstrument(values []LabelValue) string {
	if l := d.instrumentLabel(); l >= 0 {
		if name, ok := d.Labels[l].Instruments[values[l].Prom]; ok {
			return name
		}
	}
	return d.OTelName
}

// instrumentLabel is the index of the label that chooses the instrument, or
// -1.
func (d *Def) instrumentLabel() int {
	for i, l := range d.Labels {
		if len(l.Instruments) > 0 {
			return i
		}
	}
	return -1
}
