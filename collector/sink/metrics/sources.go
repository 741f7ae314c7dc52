package metrics

import (
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/collector/sink"
)

// The metrics read when an exporter collects: the flow sources' counters
// (events read and lost before they became flow records, the connection
// table, the policy revision), the sink queues' counts, and the accounts of
// every stage (stages.go); and the sinks' write durations, recorded as each
// write ends.

func lostEventsDef() Def {
	return Def{
		Name: LostEventsTotal, OTelName: OTelLostEvents, Unit: "{event}", Kind: KindCounter, Observed: true,
		Help:   "Events lost before they became flow records (for the datapath: ring-buffer reservations that failed), by source.",
		Labels: []Label{{Name: LabelSource, Key: KeyLostSource}},
	}
}

// sourceDef defines one of the metrics of a flow source's counters,
// labelled by source.
func sourceDef(name, otelName, unit string, kind Kind, help string) Def {
	return Def{
		Name: name, OTelName: otelName, Unit: unit, Kind: kind, Observed: true, Help: help,
		Labels: []Label{{Name: LabelSource, Key: KeyFlowSource}},
	}
}

func eventsReadDef() Def {
	return sourceDef(EventsReadTotal, OTelEventsRead, "{event}", KindCounter,
		"Events read from a flow source (for the datapath: its ring buffer) and turned into flow records, by source.")
}

func flowTableEntriesDef() Def {
	return sourceDef(FlowTableEntries, OTelFlowTableEntries, "{entry}", KindGauge,
		"Live entries of a flow source's connection table (the datapath's flow table), as of its last sweep, by source.")
}

func flowTableCapacityDef() Def {
	return sourceDef(FlowTableCapacity, OTelFlowTableCapacity, "{entry}", KindGauge,
		"Entries a flow source's connection table holds at most; beyond it the oldest are evicted, by source.")
}

func policyRevisionDef() Def {
	return sourceDef(PolicyRevision, OTelPolicyRevision, "{revision}", KindGauge,
		"Revision of the policy a flow source enforces (the datapath); it grows by one with every policy change.")
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

func spooledFlowsDef() Def {
	return queueDef(SinkSpooledFlows, OTelSinkSpooledFlows, KindGauge,
		"Flows held in the sink's on-disk spool, waiting for the sink to take them.")
}

func spoolBytesDef() Def {
	d := queueDef(SinkSpoolBytes, OTelSinkSpoolBytes, KindGauge, "Bytes the sink's on-disk spool takes.")
	d.Unit = "By"
	return d
}

func writeErrorsDef() Def {
	d := queueDef(SinkWriteErrorsTotal, OTelSinkWriteErrors, KindCounter,
		"Writes of a batch to the sink that failed (each retry counts).")
	d.Unit = "{write}"
	return d
}

// writeDurationDef is recorded per write, by the queue (Queue.ObserveWrites).
func writeDurationDef() Def {
	return Def{
		Name: SinkWriteDurationSeconds, OTelName: OTelSinkWriteDuration, Unit: "s", Kind: KindHistogram, Capped: true,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		Help:    "Time a write of one batch to the sink took, failed writes included.",
		Labels:  []Label{{Name: LabelSink, Key: KeySink}},
	}
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
	IOStats() sink.IOStats
}

// sources are what the observed metrics read.
type sources struct {
	mu      sync.Mutex
	lost    []lostSource
	sources []sink.SourceCounters
	queues  []Queue
	stages  []func() []account.Stage
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

// AddSources reports the flow sources' counters (sink.Env.Sources)
// whenever an exporter collects: events read and lost, and, for a source
// with a connection table or a policy, its fill and policy revision.
func (m *Metrics) AddSources(srcs ...sink.SourceCounters) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.sources = append(m.sources.sources, srcs...)
}

// AddQueues reports the queues' stats as the periscope_sink_* metrics
// labelled by sink name. Names must be unique.
func (m *Metrics) AddQueues(queues ...Queue) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.queues = append(m.sources.queues, queues...)
}

// WatchQueues is AddQueues for the queues of a sink assembly (a
// sink.Part's WatchQueues); it also records every write's duration. Call
// it before the queues run.
func (m *Metrics) WatchQueues(queues []*sink.Queue) {
	for _, q := range queues {
		m.AddQueues(q)
		name := q.Name()
		q.ObserveWrites(func(d time.Duration, _ error) {
			m.writes.get(name)[0].Record(d.Seconds())
		})
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
	for _, s := range m.sources.sources {
		st, name := s.Read(), []LabelValue{str(s.Name)}
		yield(&m.defs.eventsRead, name, float64(st.EventsRead))
		yield(&m.defs.lostEvents, name, float64(st.EventsLost))
		if st.FlowTableCapacity > 0 {
			yield(&m.defs.flowTableEntries, name, float64(st.FlowTableEntries))
			yield(&m.defs.flowTableCapacity, name, float64(st.FlowTableCapacity))
		}
		yield(&m.defs.policyRevision, name, float64(st.PolicyRevision))
		if s.Maps == nil {
			continue
		}
		for _, km := range s.Maps() {
			labels := []LabelValue{name[0], str(km.Name)}
			yield(&m.defs.mapMemory, labels, float64(km.Bytes))
			yield(&m.defs.mapMaxEntries, labels, float64(km.MaxEntries))
		}
	}
	for _, q := range m.sources.queues {
		st, io, name := q.Stats(), q.IOStats(), []LabelValue{str(q.Name())}
		yield(&m.defs.queueLength, name, float64(st.Queued))
		yield(&m.defs.queueDropped, name, float64(st.Dropped))
		yield(&m.defs.queueWritten, name, float64(st.Written))
		yield(&m.defs.queueFailed, name, float64(st.Failed))
		yield(&m.defs.spooledFlows, name, float64(st.Spooled))
		yield(&m.defs.spoolBytes, name, float64(io.SpoolBytes))
		yield(&m.defs.writeErrors, name, float64(io.WriteErrors))
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
