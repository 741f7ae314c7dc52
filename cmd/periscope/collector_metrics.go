package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/datapath"
)

// newMetrics builds the collector's Prometheus metrics on a registry of its
// own and the /metrics handler that serves it.
func newMetrics(options string, dp *datapath.Datapath, logger *slog.Logger) (*metrics.Metrics, http.Handler, error) {
	opts, err := metrics.ParseOptions(options)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-options: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus metrics: %w", err)
	}
	m.AddLostEventsSource("ringbuf", func() uint64 { return dp.Stats().EventsLost })
	return m, metrics.Handler(reg, logger), nil
}
