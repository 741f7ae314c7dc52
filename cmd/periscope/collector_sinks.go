package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/sinks"
	"github.com/periscope-dev/periscope/filter"
	"github.com/periscope-dev/periscope/ui"
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
	// history is nil without --clickhouse.
	history collector.History
}

// newCollectorSinks opens the sinks fl asks for as one assembly; lost reads
// the datapath's lost events for the metrics.
func newCollectorSinks(ctx context.Context, fl sinkFlags, nodeName string, lost func() uint64, logger *slog.Logger) (*collectorSinks, error) {
	set := fl.plugins()
	a, err := set.Open(ctx, sink.Env{
		NodeName: nodeName,
		Logger:   logger,
		Lost:     []sink.LostSource{{Name: "ringbuf", Read: lost}},
	})
	if err != nil {
		return nil, err
	}
	s := &collectorSinks{Assembly: a, sinks: []collector.Sink{a}, handlers: a.Handlers()}
	if st := set.ClickHouse(); st != nil {
		s.history = storeHistory(st)
	}
	return s, nil
}

// runWith runs the sinks while run (the collector) runs, then drains and
// closes them (see sink.Assembly.RunWith).
func (s *collectorSinks) runWith(ctx context.Context, run func(context.Context) error) error {
	return s.RunWith(ctx, run)
}

// storeHistory reads the ClickHouse store for GET /api/v1/flows?source=clickhouse.
func storeHistory(st *clickhouse.Store) collector.History {
	return collector.HistoryFunc(func(ctx context.Context, q collector.HistoryQuery) ([]api.Flow, error) {
		f, err := filter.Parse(q.Chips)
		if err != nil {
			return nil, err
		}
		return st.Query(ctx, clickhouse.HistoryQuery{Filter: f, Since: q.Since, Until: q.Until, First: q.First, Last: q.Last})
	})
}

// uiHistory is the history for the web UI, or nil without one.
func (s *collectorSinks) uiHistory() ui.HistorySource {
	if s.history == nil {
		return nil
	}
	return historySource{s.history}
}

// historySource adapts a collector.History to the UI.
type historySource struct{ h collector.History }

func (hs historySource) History(ctx context.Context, q ui.Query, fn func(*api.Flow) error) error {
	flows, err := hs.h.Query(ctx, collector.HistoryQuery{Chips: q.Chips, Since: q.Since, Until: q.Until, Last: q.Last})
	if err != nil {
		return err
	}
	for i := range flows {
		if err := fn(&flows[i]); err != nil {
			return err
		}
	}
	return nil
}
