package metrics

import (
	"sync"

	"github.com/periscope-dev/periscope/collector/sink"
)

// The metrics read when an exporter collects: events lost before they became
// flow records, and the sink queues' counts.

func lostEventsDef() Def {
	return Def{
		Name: LostEventsTotal, OTelName: OTelLostEvents, Unit: "{event}", Kind: KindCounter, Observed: true,
		Help:   "Events lost before they became flow records (for the datapath: ring-buffer reservations that failed), by source.",
		Labels: []Label{{Name: LabelSource, Key: KeyLostSource}},
	}
}

// queueDef defines one of the periscope_sink_* metrics, labelled by sink.
func queueDef(name, otelName string, kind Kind, help string) Def {
	return Def{
		Name: name, OTelName: otelName, Unit: "{flow}", Kind: kind, Observed: true, Help: help,
		Labels: []Label{{Name: LabelSink, Key: KeySink}},
	}
}

func queueLengthDef() Def {
	return queueDef(SinkQueueLength, OTelSinkQueueLength, KindGauge,
		"Flows held in the sink's queue, including the batch being written.")
}

func queueDroppedDef() Def {
	return queueDef(SinkDroppedTotal, OTelSinkDropped, KindCounter,
		"Flows the sink's queue refused because it was full.")
}

func queueWrittenDef() Def {
	return queueDef(SinkWrittenTotal, OTelSinkWritten, KindCounter, "Flows the sink accepted.")
}

func queueFailedDef() Def {
	return queueDef(SinkFailedTotal, OTelSinkFailed, KindCounter,
		"Flows lost because the sink failed to write them (after retries, or at shutdown).")
}

// Queue is what the metrics read of a sink queue (*sink.Queue has it).
type Queue interface {
	Name() string
	Stats() sink.Stats
}

// sources are what the observed metrics read.
type sources struct {
	mu     sync.Mutex
	lost   []lostSource
	queues []Queue
	kernel []func() sink.KernelMaps
}

type lostSource struct {
	name LabelValue
	read func() uint64
}

// AddLostEventsSource reports read() as periscope_lost_events_total{source}
// whenever an exporter collects. read must be cheap, safe for concurrent
// use, and return a value that never decreases (such as the datapath's
// lost-events counter).
func (m *Metrics) AddLostEventsSource(source string, read func() uint64) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.lost = append(m.sources.lost, lostSource{str(source), read})
}

// AddQueues reports the queues' stats as the periscope_sink_* metrics
// labelled by sink name. Names must be unique.
func (m *Metrics) AddQueues(queues ...Queue) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.queues = append(m.sources.queues, queues...)
}

// WatchQueues is AddQueues for the queues of a sink assembly (a
// sink.Part's WatchQueues).
func (m *Metrics) WatchQueues(queues []*sink.Queue) {
	for _, q := range queues {
		m.AddQueues(q)
	}
}

// collect reports every observed metric (a Collect).
func (m *Metrics) collect(yield func(d *Def, values []LabelValue, v float64)) {
	tracked, evicted := m.traffic.deltas.Stats()
	yield(&m.defs.tracked, nil, float64(tracked))
	yield(&m.defs.evicted, nil, float64(evicted))
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	for _, l := range m.sources.lost {
		yield(&m.defs.lostEvents, []LabelValue{l.name}, float64(l.read()))
	}
	for _, q := range m.sources.queues {
		st, name := q.Stats(), []LabelValue{str(q.Name())}
		yield(&m.defs.queueLength, name, float64(st.Queued))
		yield(&m.defs.queueDropped, name, float64(st.Dropped))
		yield(&m.defs.queueWritten, name, float64(st.Written))
		yield(&m.defs.queueFailed, name, float64(st.Failed))
	}
	for _, read := range m.sources.kernel {
		k := read()
		for _, km := range k.Maps {
			name := []LabelValue{str(km.Name)}
			yield(&m.defs.mapMemory, name, float64(km.Bytes))
			yield(&m.defs.mapMaxEntries, name, float64(km.MaxEntries))
		}
		yield(&m.defs.flowTableEntries, nil, float64(k.FlowTableEntries))
	}
}
