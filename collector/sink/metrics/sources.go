package metrics

import (
	"sync"

	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/collector/sink"
)

// The metrics read when an exporter collects: events lost before they became
// flow records, the sink queues' counts, and the accounts of every stage
// (stages.go).

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

func queueSpooledDef() Def {
	return queueDef(SinkSpooled, OTelSinkSpooled, KindGauge,
		"Flows held in the sink's spool on disk (of this run or an earlier one).")
}

func queueCorruptDef() Def {
	return queueDef(SinkCorruptTotal, OTelSinkCorrupt, KindCounter,
		"Flows lost because their spool segment was truncated or damaged.")
}

func queueDeduplicatedDef() Def {
	return queueDef(SinkDeduplicatedTotal, OTelSinkDeduplicated, KindCounter,
		"Flows of retried or uncertain writes the sink found stored already and did not store again (counted as written too).")
}

func queueRecoveredDef() Def {
	return queueDef(SinkRecoveredTotal, OTelSinkRecovered, KindCounter,
		"Flows an earlier run of the collector left to this one, in the sink's spool and journal (unrecovered ones included).")
}

func queueUnrecoveredDef() Def {
	return queueDef(SinkUnrecoveredTotal, OTelSinkUnrecovered, KindCounter,
		"Flows an earlier run accepted that its journal could not give back (a power loss).")
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
	stages []func() []account.Stage
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
		yield(&m.defs.queueSpooled, name, float64(st.Spooled))
		yield(&m.defs.queueCorrupt, name, float64(st.Corrupt))
		yield(&m.defs.queueDeduplicated, name, float64(st.Deduplicated))
		yield(&m.defs.queueRecovered, name, float64(st.Recovered))
		yield(&m.defs.queueUnrecovered, name, float64(st.Unrecovered))
		m.yieldStage(yield, st.Stage(account.SinkStage(q.Name())))
	}
	for _, read := range m.sources.stages {
		for _, st := range read() {
			m.yieldStage(yield, st)
		}
	}
}
