// Package sinks lists the sinks a collector can open: each is a
// sink.Plugin, one line in New. Commands register the list's flags and open
// it as one sink.Assembly; adding a sink never touches their wiring.
//
// The package must not hold anything but the list: each sink's flags and
// opening live in its own package, the assembling in collector/sink.
package sinks

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/metrics/prom"
	"github.com/periscope-dev/periscope/collector/sink/otel"
)

// Set is every sink plugin of one command, with its flags' values.
type Set struct {
	plugins    []sink.Plugin
	clickhouse *clickhouse.Plugin
}

// New returns the plugins, in the order they open (and close).
func New() *Set {
	options := metrics.NewFlags()
	ch := clickhouse.NewPlugin()
	return &Set{clickhouse: ch, plugins: []sink.Plugin{
		options,                 // --metrics-options, for both metric exporters
		prom.NewPlugin(options), // --metrics
		otel.NewPlugin(options), // --otlp-*, $OTEL_EXPORTER_OTLP_*
		ch,                      // --clickhouse*
	}}
}

// AddFlags registers every plugin's flags of scope on f.
func (s *Set) AddFlags(f *pflag.FlagSet, scope sink.FlagScope) {
	for _, p := range s.plugins {
		p.AddFlags(f, scope)
	}
}

// Open opens the sinks the flags ask for (see sink.Open).
func (s *Set) Open(ctx context.Context, env sink.Env) (*sink.Assembly, error) {
	return sink.Open(ctx, env, s.plugins...)
}

// ClickHouse is the ClickHouse store Open opened, for the history reader;
// nil without --clickhouse.
func (s *Set) ClickHouse() *clickhouse.Store { return s.clickhouse.Store() }
