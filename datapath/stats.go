package datapath

import (
	"fmt"
	"sync/atomic"
)

// Stats are the datapath's counters since Load.
type Stats struct {
	EventsEmitted uint64 // events the kernel tried to put in the ring (sum over CPUs)
	EventsLost    uint64 // events dropped because the ring was full (sum over CPUs)
	EventsRead    uint64 // events Run read from the ring: EventsRead + EventsLost = EventsEmitted once drained
	DecodeErrors  uint64 // events read that did not decode (not passed to emit)
	FlowsStarted  uint64 // flow-table entries created by the kernel (one START each)
	FlowsEnded    uint64 // End records: built by the sweeper, or by the kernel when a new SYN reuses a closed TCP tuple

	// FlowsEvicted estimates the flows the kernel's LRU table dropped before
	// their End was reported (their last counts are lost): FlowsStarted
	// minus FlowsEnded minus the live entries, as of the last sweep. The
	// kernel does not report LRU evictions, so this is derived: it is exact
	// when the table is quiet during a sweep, and may be off by the few
	// flows created or replaced while a sweep reads the table. A growing
	// value means FlowTableSize is too small for the traffic.
	FlowsEvicted uint64

	// FlowTableEntries are the flow-table entries the last sweep read (once
	// per idle-timeout check); FlowTableSize is the table's capacity. A
	// table near full evicts flows (FlowsEvicted).
	FlowTableEntries uint64
	FlowTableSize    uint64

	// RecordsMerged counts the records that merged a connection's two
	// observation points (api.Flow.Other); SocketsMerged the socket closes
	// folded into their connection's records instead of a record each.
	RecordsMerged, SocketsMerged uint64
	// LateJoins counts second observation points whose START came after
	// the first's had been emitted alone (folded in silently); EndsAlone
	// the Ends emitted without their companion's, which did not come in
	// time. Both are normally near zero.
	LateJoins, EndsAlone uint64
}

// mergeStats are the merger's counters (Stats).
type mergeStats struct {
	merged, socksMerged, lateJoins, endsAlone atomic.Uint64
}

// Stats returns the counters. It is safe to call concurrently with Run.
func (d *Datapath) Stats() Stats {
	s := Stats{
		EventsRead:       d.eventsRead.Load(),
		DecodeErrors:     d.decodeErrors.Load(),
		FlowsEnded:       d.flowsEnded.Load(),
		FlowsEvicted:     d.flowsEvicted.Load(),
		FlowTableEntries: d.flowsLive.Load(),
		FlowTableSize:    uint64(d.objs.Flows.MaxEntries()),
		RecordsMerged:    d.merge.merged.Load(),
		SocketsMerged:    d.merge.socksMerged.Load(),
		LateJoins:        d.merge.lateJoins.Load(),
		EndsAlone:        d.merge.endsAlone.Load(),
	}
	k, err := d.kernelStats()
	if err != nil {
		d.log.Warn("read kernel counters", "err", err)
	}
	s.EventsEmitted, s.EventsLost, s.FlowsStarted = k.emitted, k.lost, k.started
	s.FlowsEnded += k.ended
	return s
}

// kernelCounters are the per-CPU stats slots, summed.
type kernelCounters struct {
	emitted, lost, started, ended uint64
}

// kernelStats sums every slot of the per-CPU stats array.
func (d *Datapath) kernelStats() (kernelCounters, error) {
	var k kernelCounters
	for _, slot := range []struct {
		n   tcFlowFlowStat
		dst *uint64
	}{
		{tcFlowFlowStatFLOW_STAT_EMITTED, &k.emitted},
		{tcFlowFlowStatFLOW_STAT_LOST, &k.lost},
		{tcFlowFlowStatFLOW_STAT_STARTED, &k.started},
		{tcFlowFlowStatFLOW_STAT_ENDED, &k.ended},
	} {
		v, err := d.perCPUSum(uint32(slot.n))
		if err != nil {
			return k, err
		}
		*slot.dst = v
	}
	return k, nil
}

// perCPUSum sums one slot of the per-CPU stats array.
func (d *Datapath) perCPUSum(slot uint32) (uint64, error) {
	var vals []uint64
	if err := d.objs.Stats.Lookup(slot, &vals); err != nil {
		return 0, fmt.Errorf("lookup stats slot %d: %w", slot, err)
	}
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum, nil
}
