package sink

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api/account"
)

// Plugin is one kind of sink the collector can open (ClickHouse, OTLP,
// Prometheus, ...): its flags and how it opens. Each sink package provides
// one, collector/sink/sinks lists them, and Open walks the list: adding a
// sink is one package plus one line there, never a change to the wiring in
// cmd/. A Plugin holds its flags' values: make one per command.
type Plugin interface {
	// Name names the sink in logs and errors ("clickhouse").
	Name() string
	// AddFlags registers the plugin's flags of scope on f.
	AddFlags(f *pflag.FlagSet, scope FlagScope)
	// Open opens the sink if its flags (or the environment) ask for it and
	// returns what it adds to the pipeline, or nil when not asked for. On
	// error it has closed what it opened itself; the errors name the flag
	// at fault.
	Open(ctx context.Context, env Env) (*Part, error)
}

// FlagScope chooses which of its flags a Plugin registers.
type FlagScope uint8

// Flag scopes.
const (
	// AllFlags are every flag (periscope collector).
	AllFlags FlagScope = iota
	// EnablingFlags are only those that turn the sink on, the rest keeping
	// their defaults (periscope demo).
	EnablingFlags
)

// Env is what Open gives every plugin.
type Env struct {
	// NodeName names this node (OTLP's host.name). Empty: the sinks' own
	// default.
	NodeName string
	// Logger receives the sinks' messages. Default slog.Default().
	Logger *slog.Logger
	// Sources are the producers of flow records (the datapath) whose
	// counters the metrics report.
	Sources []SourceCounters
	// Stages, when set, reads the accounts of the stages before the sinks
	// (the datapath's), for the metrics; the queues' own are added to them.
	// It must be safe for concurrent use.
	Stages func() []account.Stage
	// ShutdownTimeout bounds each Part's Close. Default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// DefaultShutdownTimeout is the default of Env.ShutdownTimeout.
const DefaultShutdownTimeout = 10 * time.Second

// SourceCounters reads a flow source's counters; Read must be cheap and
// safe for concurrent use.
type SourceCounters struct {
	Name string // the source's name in metrics ("ringbuf")
	Read func() SourceStats
	// Maps, when set, reads the source's kernel maps (each map's size and
	// memory) when an exporter collects; it may ask the kernel, so it is
	// read only then. Safe for concurrent use.
	Maps func() []KernelMap
}

// SourceStats are a flow source's counters. The event counters never
// decrease; a source without a connection table or policy leaves those
// fields zero.
type SourceStats struct {
	EventsRead uint64 // events read and turned into flow records (or failed to decode)
	EventsLost uint64 // events lost before they could be read (a full ring buffer)
	// FlowTableEntries and FlowTableCapacity are the live entries and size
	// of the source's connection table.
	FlowTableEntries, FlowTableCapacity uint64
	// PolicyRevision is the revision of the policy the source enforces; it
	// grows with every policy change.
	PolicyRevision uint64
}

// KernelMap is one kernel map: its size and the memory the kernel accounts
// to it.
type KernelMap struct {
	Name       string
	MaxEntries uint32
	Bytes      uint64
}

// Part is what an opened sink adds to the pipeline. Every field is
// optional.
type Part struct {
	// Observers see every flow synchronously on the pipeline goroutine.
	Observers []Observer
	// Queues, made by the plugin with NewQueue, get every flow; the
	// assembly runs them, and closes them once they have drained.
	Queues []*Queue
	// Handlers are served next to the collector's API, by pattern
	// ("GET /metrics"). Two sinks may not serve one pattern.
	Handlers map[string]http.Handler
	// WatchQueues is given every queue of the assembly once all sinks are
	// open (metrics report their counts).
	WatchQueues func(queues []*Queue)
	// Run runs beside the pipeline until its context ends (ClickHouse drops
	// old partitions).
	Run func(ctx context.Context)
	// Close releases what Open opened, once the pipeline has stopped, the
	// queues have drained and their spools are closed; its context ends
	// after Env.ShutdownTimeout.
	Close func(ctx context.Context) error
}
