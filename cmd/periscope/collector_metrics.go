package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/metrics/prom"
)

// newMetrics builds the collector's Prometheus metrics on a registry of its
// own and the /metrics handler that serves it; lost reads the datapath's
// lost events.
func newMetrics(opts metrics.Options, lost func() uint64, logger *slog.Logger) (*metrics.Metrics, http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := prom.NewMetrics(reg, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus metrics: %w", err)
	}
	m.AddLostEventsSource("ringbuf", lost)
	return m, prom.Handler(reg, logger), nil
}
