// Package account is the accounting of Periscope's flow path, as the
// collector's status API and its metrics report it: every stage a record
// passes (the kernel's ring buffer, the decoder, each sink's queue) counts
// what came in and where it went, so that at every stage
//
//	In = Out + Dropped + Queued
//
// where Dropped is the sum of its reasons. A stage's counts begin together
// (for the datapath's stages when its pinned maps were made, so they go on
// across restarts; for a sink's queue when the process started, with what
// an earlier run left counted in). The package holds types and names only
// and imports nothing of Periscope's, so every producer and reader shares
// them.
package account

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Stage is one stage's account.
type Stage struct {
	// Name names the stage: StageRingBuffer, StageDecoder,
	// StageAttribution, or SinkStage's.
	Name string `json:"name"`
	// In counts what entered the stage.
	In uint64 `json:"in"`
	// Out counts what the stage passed on.
	Out uint64 `json:"out"`
	// Dropped counts what the stage lost, by reason: a fixed set per stage,
	// zeros included.
	Dropped map[string]uint64 `json:"dropped"`
	// Queued is what the stage holds now.
	Queued uint64 `json:"queued"`
	// Detail are the stage's own counts that make up In, Out or Queued
	// (a sink's offered and recovered flows, those in memory and on disk).
	Detail map[string]uint64 `json:"detail,omitempty"`
}

// Stage names.
const (
	// StageRingBuffer is the kernel's ring buffer: In the events the
	// programs emitted, Out those read, Dropped those lost because it was
	// full, Queued those waiting in it.
	StageRingBuffer = "ringbuf"
	// StageDecoder turns events (and the flow ends the sweeper finds) into
	// flow records: In those that are a record's own (not those merged into
	// another's record), Out the records handed to the collector, Dropped
	// the events that did not decode, Queued those held for their
	// connection's other observation point.
	StageDecoder = "decoder"
	// StageAttribution is the collector's hold of the records of workloads
	// not yet discovered: In every record the pipeline took, Out those it
	// passed on (at once, or attributed or at the end of their window),
	// Queued those held; nothing is dropped.
	StageAttribution = "attribution"
	// sinkPrefix begins the name of a sink's queue stage.
	sinkPrefix = "sink/"
)

// SinkStage is the stage name of the queue in front of sink name
// ("sink/clickhouse").
func SinkStage(name string) string { return sinkPrefix + name }

// Drop reasons.
const (
	ReasonRingFull    = "ring_full"    // the ring buffer had no room for the event
	ReasonDecodeError = "decode_error" // the event did not decode
	ReasonQueueFull   = "queue_full"   // a sink's queue (or its spool) had no room
	ReasonFailed      = "failed"       // the sink failed to write it on every attempt
	ReasonCorrupt     = "corrupt"      // its spool segment was damaged
	ReasonUnrecovered = "unrecovered"  // accepted by an earlier run, not readable in its journal
)

// DroppedTotal is the sum of Dropped.
func (s Stage) DroppedTotal() uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

// Check returns an error naming the counts when In is not Out + Dropped +
// Queued.
func (s Stage) Check() error {
	if s.In == s.Out+s.DroppedTotal()+s.Queued {
		return nil
	}
	var drops []string
	for _, r := range slices.Sorted(maps.Keys(s.Dropped)) {
		drops = append(drops, fmt.Sprintf("%s %d", r, s.Dropped[r]))
	}
	return fmt.Errorf("stage %s: in %d != out %d + dropped %d (%s) + queued %d",
		s.Name, s.In, s.Out, s.DroppedTotal(), strings.Join(drops, ", "), s.Queued)
}
