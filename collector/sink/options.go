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
	//
	// With a spool, every flow Offer accepts is also written ahead to the
	// spool's journal (see JournalBytes), so that a process crash loses
	// nothing accepted: the next Queue on the directory spools what the
	// journal holds before anything else.
	SpoolDir string
	// SpoolMaxBytes bounds the spool's files; a batch that does not fit is
	// dropped and counted. What a crashed run's journal held is spooled at
	// the next start whatever the bound. Default DefaultSpoolMaxBytes.
	SpoolMaxBytes int64
	// JournalBytes is the size of the journal's ring of encoded flows (a
	// file in SpoolDir, allocated whole, mapped into memory): it holds the
	// flows the queue holds in memory, a few hundred bytes each; when it is
	// full Offer drops (counted) even if the queue has room, and more than
	// half full it spools during an outage as the ring does. Default
	// Capacity × DefaultJournalBytesPerFlow, at least 1 MiB.
	JournalBytes int64
	// JournalSyncInterval is how often the journal's header, and the
	// flows it has held since the previous interval, are written to the
	// disk (msync). It bounds what a power loss or kernel crash can lose:
	// flows held for less than two intervals, which the next start counts
	// as Unrecovered as far as the last synced header knew of them. Flows
	// the sink took sooner are never synced, so a sink that keeps up costs
	// one page per interval. A process crash loses nothing whatever the
	// interval: the page cache keeps the journal. Default 1s; negative:
	// only when the queue closes.
	JournalSyncInterval time.Duration
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
	// DefaultJournalBytesPerFlow sizes the journal from Capacity: room for
	// flows of twice a typical encoding.
	DefaultJournalBytesPerFlow = 1024
	DefaultJournalSyncInterval = time.Second
	maxRetryBackoff            = 10 * time.Second
)

// withDefaults fills zero fields and rejects negative ones.
func (o QueueOptions) withDefaults() (QueueOptions, error) {
	if o.Capacity < 0 || o.BatchSize < 0 || o.FlushInterval < 0 || o.MaxAttempts < 0 ||
		o.RetryBackoff < 0 || o.DrainTimeout < 0 || o.LogInterval < 0 || o.SpoolMaxBytes < 0 || o.JournalBytes < 0 {
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
	if o.JournalBytes == 0 {
		o.JournalBytes = int64(o.Capacity) * DefaultJournalBytesPerFlow
	}
	o.JournalBytes = max(o.JournalBytes, minJournalBytes)
	if o.JournalSyncInterval == 0 {
		o.JournalSyncInterval = DefaultJournalSyncInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
