package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/sinks"
	"github.com/periscope-dev/periscope/datapath"
)

// sinkFlags are the flags of every sink (collector/sink/sinks) and, once
// parsed, what opens them. The zero value opens the sinks' defaults.
type sinkFlags struct {
	set *sinks.Set
}

// plugins are the sinks with the flags' values.
func (fl sinkFlags) plugins() *sinks.Set {
	if fl.set == nil {
		return sinks.New()
	}
	return fl.set
}

// addFlags registers every sink flag (those of `periscope collector`).
func (fl *sinkFlags) addFlags(f *pflag.FlagSet) {
	fl.set = sinks.New()
	fl.set.AddFlags(f, sink.AllFlags)
}

// addEnablingFlags registers only the flags that turn a sink on (--metrics,
// --clickhouse), for `periscope demo`.
func (fl *sinkFlags) addEnablingFlags(f *pflag.FlagSet) {
	fl.set = sinks.New()
	fl.set.AddFlags(f, sink.EnablingFlags)
}

// collectorSinks are what the sink flags add to a collector: its Sinks,
// extra Handlers, and the ClickHouse history.
type collectorSinks struct {
	*sink.Assembly
	sinks    []collector.Sink
	handlers map[string]http.Handler
	// more are stages the metrics read beside the datapath's (the
	// collector's own, once it exists: addStages).
	more *atomic.Pointer[func() []account.Stage]
	// history is nil without --clickhouse.
	history flowquery.Reader
}

// newCollectorSinks opens the sinks fl asks for as one assembly; dp's
// counters (events read and lost, its flow table and policy revision, its
// kernel maps, its stages' accounts) feed the metrics. dp may be nil (tests
// of other sources): the metrics then have no datapath counters.
func newCollectorSinks(ctx context.Context, fl sinkFlags, nodeName string, dp *datapath.Datapath, logger *slog.Logger) (*collectorSinks, error) {
	env := sink.Env{NodeName: nodeName, Logger: logger}
	more := &atomic.Pointer[func() []account.Stage]{}
	if dp != nil {
		env.Sources = []sink.SourceCounters{datapathSource(dp)}
		env.Stages = func() []account.Stage {
			st := dp.Stats().Stages()
			if f := more.Load(); f != nil {
				st = append(st, (*f)()...)
			}
			return st
		}
	}
	set := fl.plugins()
	a, err := set.Open(ctx, env)
	if err != nil {
		return nil, err
	}
	s := &collectorSinks{Assembly: a, sinks: []collector.Sink{a}, handlers: a.Handlers(), more: more}
	if st := set.ClickHouse(); st != nil {
		s.history = st
	}
	return s, nil
}

// addStages adds the collector's own stages (collector.Collector.Stages)
// to those the metrics read.
func (s *collectorSinks) addStages(f func() []account.Stage) { s.more.Store(&f) }

// stages reads the accounts of dp's stages and the sinks', for the status.
func (s *collectorSinks) stages(dp *datapath.Datapath) func() []account.Stage {
	return func() []account.Stage { return append(dp.Stats().Stages(), s.Stages()...) }
}

// datapathSource reads dp's counters and kernel maps for the metrics.
func datapathSource(dp *datapath.Datapath) sink.SourceCounters {
	return sink.SourceCounters{
		Name: "ringbuf",
		Read: func() sink.SourceStats {
			s := dp.Stats()
			return sink.SourceStats{
				EventsRead: s.EventsRead, EventsLost: s.EventsLost,
				FlowTableEntries: s.FlowTableEntries, FlowTableCapacity: s.FlowTableSize,
				PolicyRevision: dp.PolicyRevision(),
			}
		},
		Maps: func() []sink.KernelMap {
			var maps []sink.KernelMap
			for _, m := range dp.MapMemory() {
				maps = append(maps, sink.KernelMap{Name: m.Name, MaxEntries: m.MaxEntries, Bytes: m.Bytes})
			}
			return maps
		},
	}
}

// runWith runs the sinks while run (the collector) runs, then drains and
// closes them (see sink.Assembly.RunWith).
func (s *collectorSinks) runWith(ctx context.Context, run func(context.Context) error) error {
	return s.RunWith(ctx, run)
}
