package sink

import (
	"fmt"
	"log/slog"
	"time"
)

// QueueOptions configure a Queue. Zero fields take the defaults below.
type QueueOptions struct {
	// Capacity is the most flows the queue holds, counting the batch being
	// written; beyond it Offer drops. Default 8192.
	Capacity int
	// BatchSize is the most flows per Write; a full batch is written at once.
	// Default 512, at most Capacity.
	BatchSize int
	// FlushInterval bounds how long a flow waits for its batch to fill.
	// Default 1s.
	FlushInterval time.Duration
	// MaxAttempts is how many times a batch is written before its flows are
	// counted as failed. Default 3.
	MaxAttempts int
	// RetryBackoff is the wait before the second attempt; it doubles for
	// each further attempt, up to 10s. Default 200ms.
	RetryBackoff time.Duration
	// DrainTimeout bounds the final flush once Run's context is done.
	// Default 5s.
	DrainTimeout time.Duration
	// LogInterval is the least time between two log lines about drops or
	// failures of this queue; they are always counted. Default 10s.
	LogInterval time.Duration
	// Logger receives the queue's warnings. Default slog.Default().
	Logger *slog.Logger
	// SpoolDir, when set, is a directory where the queue keeps batches its
	// sink could not take while memory runs short: during a failure, once
	// the queue holds more than half its Capacity, the oldest batches move
	// to segment files there; they are written back in order, before newer
	// flows, once the sink recovers, and a Queue started later on the same
	// directory writes what an earlier one left. With a spool a batch is
	// retried until written (MaxAttempts does not apply), and the flows
	// held at shutdown are spooled rather than counted as failed. One Queue
	// per directory.
	SpoolDir string
	// SpoolMaxBytes bounds the spool's files; a batch that does not fit is
	// dropped and counted. Default DefaultSpoolMaxBytes.
	SpoolMaxBytes int64
}

// Defaults of QueueOptions.
const (
	DefaultCapacity      = 8192
	DefaultBatchSize     = 512
	DefaultFlushInterval = time.Second
	DefaultMaxAttempts   = 3
	DefaultRetryBackoff  = 200 * time.Millisecond
	DefaultDrainTimeout  = 5 * time.Second
	DefaultLogInterval   = 10 * time.Second
	DefaultSpoolMaxBytes = 1 << 30
	maxRetryBackoff      = 10 * time.Second
)

// withDefaults fills zero fields and rejects negative ones.
func (o QueueOptions) withDefaults() (QueueOptions, error) {
	if o.Capacity < 0 || o.BatchSize < 0 || o.FlushInterval < 0 || o.MaxAttempts < 0 ||
		o.RetryBackoff < 0 || o.DrainTimeout < 0 || o.LogInterval < 0 || o.SpoolMaxBytes < 0 {
		return o, fmt.Errorf("queue options: negative value in %+v", o)
	}
	if o.Capacity == 0 {
		o.Capacity = DefaultCapacity
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	o.BatchSize = min(o.BatchSize, o.Capacity)
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.LogInterval == 0 {
		o.LogInterval = DefaultLogInterval
	}
	if o.SpoolMaxBytes == 0 {
		o.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
