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
	maxRetryBackoff      = 10 * time.Second
)

// withDefaults fills zero fields and rejects negative ones.
func (o QueueOptions) withDefaults() (QueueOptions, error) {
	if o.Capacity < 0 || o.BatchSize < 0 || o.FlushInterval < 0 || o.MaxAttempts < 0 ||
		o.RetryBackoff < 0 || o.DrainTimeout < 0 || o.LogInterval < 0 {
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
