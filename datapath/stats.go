package datapath

import (
	"fmt"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api/account"
)

// Stats are the datapath's counters since its pinned maps were made: they go
// on across restarts that adopt them (a policy in force), and begin at zero
// with new maps.
type Stats struct {
	EventsEmitted uint64 // events the kernel tried to put in the ring (sum over CPUs)
	EventsLost    uint64 // events dropped because the ring was full (sum over CPUs)
	EventsRead    uint64 // events read from the ring
	// EventsPending are the events waiting in the ring now:
	// EventsRead + EventsLost + EventsPending = EventsEmitted.
	EventsPending uint64
	DecodeErrors  uint64 // events read (or ended flows swept) that did not decode, not passed to emit
	FlowsStarted  uint64 // flow-table entries created by the kernel (one START each)
	FlowsEnded    uint64 // End records: built by the sweeper, or by the kernel when a new SYN reuses a closed TCP tuple
	FlowsSwept    uint64 // of FlowsEnded, those the sweeper built
	// RecordsEmitted are the flow records handed to Run's emit:
	// EventsRead + FlowsSwept = RecordsEmitted + EventsMerged + EventsHeld +
	// DecodeErrors.
	RecordsEmitted uint64
	// EventsMerged are the events (and swept ends) that made no record of
	// their own: folded into another's record (a connection's second
	// observation point, a socket's close, a late companion). EventsHeld
	// are those the merger holds now for their companion's (zero when Run
	// is not running: it emits them as it returns).
	EventsMerged, EventsHeld uint64

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

// mergeStats are the merger's counters (Stats); folded (EventsMerged) is
// one of the pinned user-space counters, held a gauge of this run.
type mergeStats struct {
	merged, socksMerged, lateJoins, endsAlone atomic.Uint64
	held                                      atomic.Uint64
	folded                                    *atomic.Uint64
}

// Stats returns the counters. It is safe to call concurrently with Run, and
// after Close (the user-space counters then read zero).
func (d *Datapath) Stats() Stats {
	// The reads first, then the ring's content, the kernel's counters last:
	// an event on its way meanwhile makes EventsEmitted larger, never
	// smaller, than the sum of the other three. The events merged and held
	// are read with the records, before the events that make them.
	var s Stats
	c := d.counters
	s.RecordsEmitted, s.DecodeErrors = c.load(counterRecords), c.load(counterDecodeErrors)
	s.EventsMerged, s.EventsHeld = c.load(counterMerged), d.merge.held.Load()
	s.EventsRead, s.FlowsSwept = c.load(counterRead), c.load(counterSwept)
	s.EventsPending = d.eventsPending()
	s.FlowsEvicted = d.flowsEvicted.Load()
	s.FlowTableEntries = d.flowsLive.Load()
	s.FlowTableSize = uint64(d.objs.Flows.MaxEntries())
	s.RecordsMerged, s.SocketsMerged = d.merge.merged.Load(), d.merge.socksMerged.Load()
	s.LateJoins, s.EndsAlone = d.merge.lateJoins.Load(), d.merge.endsAlone.Load()
	k, err := d.kernelStats()
	if err != nil {
		d.log.Warn("read kernel counters", "err", err)
	}
	s.EventsEmitted, s.EventsLost, s.FlowsStarted = k.emitted, k.lost, k.started
	s.FlowsEnded = s.FlowsSwept + k.ended
	return s
}

// ringRecordSize is an event's size in the ring: BPF_RINGBUF_HDR_SZ (8)
// plus the event, rounded up to 8. Every program emits the one event type.
const ringRecordSize = (8 + EventSize + 7) &^ 7

// eventsPending counts the events waiting in the ring (reserved ones
// included); zero once closed.
func (d *Datapath) eventsPending() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.reader == nil {
		return 0
	}
	return uint64(d.reader.AvailableBytes() / ringRecordSize)
}

// Stages returns the datapath's part of the flow path's accounting: the
// kernel's ring buffer and the decoder.
func (s Stats) Stages() []account.Stage {
	return []account.Stage{
		{
			Name: account.StageRingBuffer, In: s.EventsEmitted, Out: s.EventsRead, Queued: s.EventsPending,
			Dropped: map[string]uint64{account.ReasonRingFull: s.EventsLost},
		},
		{
			// The events merged into another's record are not the
			// stage's In: each record is the one event it was made of.
			Name: account.StageDecoder, In: s.EventsRead + s.FlowsSwept - s.EventsMerged, Out: s.RecordsEmitted,
			Queued:  s.EventsHeld,
			Dropped: map[string]uint64{account.ReasonDecodeError: s.DecodeErrors},
			Detail: map[string]uint64{"events_read": s.EventsRead, "flows_swept": s.FlowsSwept,
				"events_merged": s.EventsMerged},
		},
	}
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
