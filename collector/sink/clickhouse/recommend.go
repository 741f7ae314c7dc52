package clickhouse

import (
	"time"

	"github.com/periscope-dev/periscope/collector/sink"
)

// OutageBudget is how long a ClickHouse outage RecommendedQueueOptions rides
// out without failing a batch (the issue asks for 30s).
const OutageBudget = 30 * time.Second

// RecommendedQueueOptions are sink.QueueOptions for the ClickHouse sink: big
// batches (ClickHouse prefers few large inserts) and enough retries to ride
// out OutageBudget; flows beyond Capacity during an outage are dropped and
// counted by the Queue.
func RecommendedQueueOptions() sink.QueueOptions {
	return sink.QueueOptions{
		// Few large inserts: on 18.16 each insert makes a part, and one in
		// the rollup table through the view, so rows/s grow with the batch
		// (8Ki: ~0.25 of clickhouse-client's rate, 64Ki: ~0.6, 128Ki:
		// ~0.86; docs/BENCHMARKS.md). Write streams a batch in blocks, so
		// its encoding buffers do not grow with BatchSize. A batch is only
		// this big under load: FlushInterval sends whatever is held, so the
		// latency at low rates does not depend on BatchSize.
		// Capacity is two batches, so flows keep arriving while one is
		// written; 256Ki flows hold a 30s outage at ~8k flows/s and keep
		// the collector's memory bounded under overload (docs/BENCHMARKS.md);
		// a spool directory rides out longer outages.
		Capacity:  1 << 18,
		BatchSize: 1 << 17,
		// A row waits up to FlushInterval, plus the insert, plus what came
		// before the queue (an L7 row: Envoy's access-log buffer, 100ms),
		// within the 2 s goal from event to queryable row even when a loaded
		// machine makes inserts slow (docs/BENCHMARKS.md, "Envoy access-log
		// entry to queryable L7 row"). At low rates that is two small
		// inserts a second; under load a batch holds what arrived during
		// the previous insert, so batches grow as inserts slow down.
		FlushInterval: 500 * time.Millisecond,
		// 200ms doubling to 10s: 12 attempts span about 60s > OutageBudget.
		MaxAttempts:  12,
		RetryBackoff: 200 * time.Millisecond,
		DrainTimeout: 10 * time.Second,
	}
}
