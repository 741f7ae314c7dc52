package sink

import (
	"context"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
)

// Sink receives flow records in batches. Write is called from one goroutine
// at a time (the sink's Queue). The batch is only valid during the call: a
// sink that keeps flows (for a retry of its own, say) must copy them. Write
// must return soon after ctx is done; a failed Write is counted by the Queue
// as failed flows (after the Queue's retries), so a sink that can resend part
// of a batch should do so itself before returning the error.
type Sink interface {
	// Name identifies the sink in logs and metrics labels; keep it short and
	// constant ("clickhouse", "otel").
	Name() string
	// Write stores or exports the batch.
	Write(ctx context.Context, batch []api.Flow) error
}

// Observer is a cheap synchronous consumer of flows, such as a metrics
// counter: Consume is called on the pipeline goroutine, must not block, and
// must not keep the pointer after it returns.
type Observer interface {
	Consume(f *api.Flow)
}

// UncertainWriter is a Sink that can write a batch some of whose flows it
// may have stored already without storing them twice. A Queue writes such
// a batch (one whose write was in flight when an earlier process stopped)
// with WriteUncertain instead of Write when its sink has it; another sink
// may get those flows twice.
type UncertainWriter interface {
	WriteUncertain(ctx context.Context, batch []api.Flow) error
}

// Deduplicator is a Sink that counts the flows of retried or uncertain
// writes it found stored already and did not store again (they count as
// written as well).
type Deduplicator interface {
	Deduplicated() uint64
}

// Stats are a Queue's counts of flows since it was made. Every flow that
// came in (Offered, or Recovered: left by an earlier run) is in exactly one
// of Queued (held in memory, and in the journal with a spool), Spooled
// (held on disk), Dropped (the queue or the spool was full), Written (Write
// succeeded), Failed (Write failed on every attempt, or nowhere to keep it
// at shutdown), Corrupt (its spool segment was truncated or damaged) or
// Unrecovered (an earlier run accepted it and its journal could not give it
// back):
//
//	Offered + Recovered = Queued + Spooled + Dropped + Written + Failed + Corrupt + Unrecovered
//
// Stage is this identity in the accounting's terms.
type Stats struct {
	Offered     uint64 // flows given to Offer, accepted or not
	Recovered   uint64 // flows an earlier run left in the spool and journal (counting Unrecovered)
	Queued      int    // flows held in memory now, including the batch being written
	Spooled     int    // flows held in the spool now (from this run or an earlier one)
	Dropped     uint64 // flows refused by Offer (queue or journal full) or by the spool (spool full)
	Written     uint64 // flows in batches the sink accepted
	Failed      uint64 // flows in batches the sink failed to write
	Corrupt     uint64 // flows lost to truncated or damaged spool segments
	Unrecovered uint64 // flows an earlier run accepted that its journal could not give back (a power loss)
	// Deduplicated counts, among Written, the flows the sink found stored
	// already and did not store again (see Deduplicator).
	Deduplicated uint64
}

// Stage returns the stats as the account of the stage named name (see
// account.SinkStage).
func (s Stats) Stage(name string) account.Stage {
	return account.Stage{
		Name:   name,
		In:     s.Offered + s.Recovered,
		Out:    s.Written,
		Queued: uint64(s.Queued) + uint64(s.Spooled),
		Dropped: map[string]uint64{
			account.ReasonQueueFull:   s.Dropped,
			account.ReasonFailed:      s.Failed,
			account.ReasonCorrupt:     s.Corrupt,
			account.ReasonUnrecovered: s.Unrecovered,
		},
		Detail: map[string]uint64{
			"offered":      s.Offered,
			"recovered":    s.Recovered,
			"in_memory":    uint64(s.Queued),
			"spooled":      uint64(s.Spooled),
			"deduplicated": s.Deduplicated,
		},
	}
}

// IOStats say how a Queue's spool and sink fare, beyond where flows went.
type IOStats struct {
	SpoolBytes  int64  // bytes the spool's segments take on disk now
	WriteErrors uint64 // failed Write calls (each retry of a batch counts)
}
