package prom

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// Pattern is where the collector serves the metrics.
const Pattern = "GET /metrics"

// Names of the process's metrics the plugin serves beside the model's
// (client_golang's process collector), for dashboards to import like the
// model's names.
const (
	ProcessCPUSecondsTotal     = "process_cpu_seconds_total"
	ProcessResidentMemoryBytes = "process_resident_memory_bytes"
)

// Plugin is the Prometheus exporter as a sink plugin: --metrics serves the
// model's metrics, with the Go runtime's and the process's, at /metrics.
type Plugin struct {
	enabled bool
	options *metrics.Flags
}

// NewPlugin returns the plugin; options are the model's flags, shared with
// the other exporters.
func NewPlugin(options *metrics.Flags) *Plugin { return &Plugin{options: options} }

// Name implements sink.Plugin.
func (*Plugin) Name() string { return "prometheus" }

// AddFlags implements sink.Plugin: --metrics, with every scope.
func (p *Plugin) AddFlags(f *pflag.FlagSet, _ sink.FlagScope) {
	f.BoolVar(&p.enabled, "metrics", false, "serve Prometheus metrics at /metrics on --listen")
}

// Open implements sink.Plugin: the metrics on a registry of their own, an
// observer of every flow, and the handler that serves the registry.
func (p *Plugin) Open(_ context.Context, env sink.Env) (*sink.Part, error) {
	if !p.enabled {
		return nil, nil
	}
	opts, err := p.options.Options()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := NewMetrics(reg, opts)
	if err != nil {
		return nil, fmt.Errorf("prometheus metrics: %w", err)
	}
	m.AddSources(env.Sources...)
	return &sink.Part{
		Observers:   []sink.Observer{m},
		Handlers:    map[string]http.Handler{Pattern: Handler(reg, env.Logger)},
		WatchQueues: m.WatchQueues,
	}, nil
}
