package otel

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// Plugin is the OTLP export as a sink plugin: the --otlp-* flags (or the
// standard OTEL_EXPORTER_OTLP_* variables) export the model's metrics and
// one log record per flow.
type Plugin struct {
	endpoint       string
	protocol       string
	insecure       bool
	exportInterval time.Duration
	options        *metrics.Flags
}

// NewPlugin returns the plugin; options are the model's flags, shared with
// the other exporters.
func NewPlugin(options *metrics.Flags) *Plugin { return &Plugin{options: options} }

// Name implements sink.Plugin.
func (*Plugin) Name() string { return "otel" }

// AddFlags implements sink.Plugin: the --otlp-* flags, with all flags only
// (the environment turns the export on too).
func (p *Plugin) AddFlags(f *pflag.FlagSet, scope sink.FlagScope) {
	if scope != sink.AllFlags {
		return
	}
	f.StringVar(&p.endpoint, "otlp-endpoint", "",
		"export metrics and flow logs over OTLP to host:port or a URL (default: $OTEL_EXPORTER_OTLP_ENDPOINT; unset: no export)")
	f.StringVar(&p.protocol, "otlp-protocol", "", "grpc or http/protobuf (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
	f.BoolVar(&p.insecure, "otlp-insecure", false, "export OTLP without TLS")
	f.DurationVar(&p.exportInterval, "otlp-export-interval", 0,
		"time between two OTLP metric exports (default: $OTEL_METRIC_EXPORT_INTERVAL, else 60s)")
}

// enabled says whether OTLP export is asked for, by flag or environment.
func (p *Plugin) enabled() bool {
	return p.endpoint != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

// Open implements sink.Plugin.
func (p *Plugin) Open(ctx context.Context, env sink.Env) (*sink.Part, error) {
	if !p.enabled() {
		return nil, nil
	}
	opts, err := p.options.Options()
	if err != nil {
		return nil, err
	}
	e, err := New(ctx, Options{
		Endpoint:       p.endpoint,
		Protocol:       p.protocol,
		Insecure:       p.insecure,
		ExportInterval: p.exportInterval,
		NodeName:       env.NodeName,
		Metrics:        opts,
		Logger:         env.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("OTLP export: %w", err)
	}
	part, err := e.Part(env, sink.QueueOptions{Logger: env.Logger.With("component", "sink", "sink", "otel")})
	if err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), env.ShutdownTimeout)
		defer cancel()
		_ = e.Shutdown(sctx) // nothing was exported yet
		return nil, fmt.Errorf("OTLP export: %w", err)
	}
	return part, nil
}

// Part puts the exporter into a sink assembly: its metrics observe every
// flow and report env's lost events and the assembly's queues, its logs are
// written behind a queue with qo, and closing the part shuts the exporter
// down. A failed shutdown (the last export) is logged, not returned: the
// collector's own exit does not depend on a telemetry back end.
func (e *Exporter) Part(env sink.Env, qo sink.QueueOptions) (*sink.Part, error) {
	q, err := sink.NewQueue(e.Logs, qo)
	if err != nil {
		return nil, err
	}
	e.AddSources(env.Sources...)
	logger := env.Logger
	return &sink.Part{
		Observers:   []sink.Observer{e.Metrics},
		Queues:      []*sink.Queue{q},
		WatchQueues: e.WatchQueues,
		Close: func(ctx context.Context) error {
			if err := e.Shutdown(ctx); err != nil && logger != nil {
				logger.Warn("OTLP shutdown", "err", err)
			}
			return nil
		},
	}, nil
}
