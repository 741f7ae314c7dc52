package metrics

import (
	"maps"
	"slices"

	"github.com/periscope-dev/periscope/api/account"
)

// The accounts of the flow path's stages (api/account): what came in to
// each stage, went out, was dropped (by reason) and is held, so that
//
//	periscope_stage_in_total = periscope_stage_out_total
//	  + sum by (stage) (periscope_stage_dropped_total) + periscope_stage_queued
//
// holds for every stage: the datapath's (ring buffer, decoder; their counts
// go on across restarts that adopt its pinned maps) and each sink queue's.

// stageDef defines one of the periscope_stage_* metrics, labelled by stage.
func stageDef(name, otelName string, kind Kind, help string, labels ...Label) Def {
	return Def{
		Name: name, OTelName: otelName, Unit: "{item}", Kind: kind, Observed: true, Help: help,
		Labels: append([]Label{{Name: LabelStage, Key: KeyStage}}, labels...),
	}
}

func stageInDef() Def {
	return stageDef(StageInTotal, OTelStageIn, KindCounter,
		"Events or flows that entered a stage of the flow path (in = out + dropped + queued).")
}

func stageOutDef() Def {
	return stageDef(StageOutTotal, OTelStageOut, KindCounter, "Events or flows a stage of the flow path passed on.")
}

func stageDroppedDef() Def {
	return stageDef(StageDroppedTotal, OTelStageDropped, KindCounter, "Events or flows a stage of the flow path lost, by reason.",
		Label{Name: LabelReason, Key: KeyStageDropReason})
}

func stageQueuedDef() Def {
	return stageDef(StageQueued, OTelStageQueued, KindGauge, "Events or flows a stage of the flow path holds.")
}

// AddStages reports the accounts read returns (the datapath's stages) as
// the periscope_stage_* metrics whenever an exporter collects; the sink
// queues' (AddQueues) are reported too. read must be safe for concurrent
// use; its stage names must be unique.
func (m *Metrics) AddStages(read func() []account.Stage) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.stages = append(m.sources.stages, read)
}

// yieldStage reports one stage's account.
func (m *Metrics) yieldStage(yield func(d *Def, values []LabelValue, v float64), st account.Stage) {
	name := str(st.Name)
	stage := []LabelValue{name}
	yield(&m.defs.stageIn, stage, float64(st.In))
	yield(&m.defs.stageOut, stage, float64(st.Out))
	yield(&m.defs.stageQueued, stage, float64(st.Queued))
	for _, reason := range slices.Sorted(maps.Keys(st.Dropped)) {
		yield(&m.defs.stageDropped, []LabelValue{name, str(reason)}, float64(st.Dropped[reason]))
	}
}
