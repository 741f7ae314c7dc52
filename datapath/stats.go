package datapath

import "fmt"

// Stats are the datapath's counters since Load.
type Stats struct {
	EventsEmitted uint64 // events the kernel tried to put in the ring (sum over CPUs)
	EventsLost    uint64 // events dropped because the ring was full (sum over CPUs)
	EventsRead    uint64 // events Run read from the ring: EventsRead + EventsLost = EventsEmitted once drained
	DecodeErrors  uint64 // events read that did not decode (not passed to emit)
	FlowsEnded    uint64 // End records built by the sweeper
}

// Stats returns the counters. It is safe to call concurrently with Run.
func (d *Datapath) Stats() Stats {
	s := Stats{
		EventsRead:   d.eventsRead.Load(),
		DecodeErrors: d.decodeErrors.Load(),
		FlowsEnded:   d.flowsEnded.Load(),
	}
	var err error
	if s.EventsEmitted, err = d.perCPUSum(uint32(tcFlowFlowStatFLOW_STAT_EMITTED)); err != nil {
		d.log.Warn("read emitted counter", "err", err)
	}
	if s.EventsLost, err = d.perCPUSum(uint32(tcFlowFlowStatFLOW_STAT_LOST)); err != nil {
		d.log.Warn("read lost counter", "err", err)
	}
	return s
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
