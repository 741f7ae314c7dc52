package sink

import (
	"context"

	"github.com/periscope-dev/periscope/api"
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

// Stats are a Queue's counts of flows. Every offered flow (and every flow a
// previous run left in the spool) ends up in exactly one of them: Queued
// (held in memory), Spooled (held on disk), Dropped (the queue or the spool
// was full), Written (Write succeeded), Failed (Write failed on every
// attempt, or nowhere to keep it at shutdown) or Corrupt (its spool segment
// was truncated or damaged).
type Stats struct {
	Queued  int    // flows held in memory now, including the batch being written
	Spooled int    // flows held in the spool now (from this run or an earlier one)
	Dropped uint64 // flows refused by Offer (queue full) or by the spool (spool full)
	Written uint64 // flows in batches the sink accepted
	Failed  uint64 // flows in batches the sink failed to write
	Corrupt uint64 // flows lost to truncated or damaged spool segments
}

// IOStats say how a Queue's spool and sink fare, beyond where flows went.
type IOStats struct {
	SpoolBytes  int64  // bytes the spool's segments take on disk now
	WriteErrors uint64 // failed Write calls (each retry of a batch counts)
}
