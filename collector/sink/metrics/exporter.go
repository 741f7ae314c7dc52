package metrics

// Exporter exposes the model's metrics in one format: Prometheus
// (collector/sink/metrics/prom) or OpenTelemetry (collector/sink/otel).
type Exporter interface {
	// Declare creates the exporter's instruments for defs. New calls it
	// once, before anything is recorded, and the result is aligned with
	// defs: an Instrument per recorded definition, nil for an Observed one.
	// The exporter reads the Observed definitions' values with collect
	// whenever it collects (a scrape, an export).
	Declare(defs []*Def, collect Collect) ([]Instrument, error)
}

// Collect reports the current value of every series of the Observed
// definitions to yield. It is safe for concurrent use.
type Collect func(yield func(d *Def, values []LabelValue, v float64))

// Instrument is an exporter's instrument for one recorded definition.
type Instrument interface {
	// Series returns the recorder of one label set (values in the Def's
	// Labels order). It is called once per label set, not per flow; an
	// error (a value the format rejects) sends the label set to Overflow.
	Series(values []LabelValue) (Recorder, error)
	// Overflow returns the recorder of the series that counts whatever
	// lies beyond the cap.
	Overflow() Recorder
}

// Recorder records into one series: it adds v to a counter, or observes v
// into a histogram. Record is on the pipeline's hot path: it must not block
// nor allocate.
type Recorder interface {
	Record(v float64)
}

// fan records into the same series of every exporter.
type fan []Recorder

func (f fan) Record(v float64) {
	for _, r := range f {
		r.Record(v)
	}
}
