package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	periscopeotel "github.com/periscope-dev/periscope/collector/sink/otel"
)

// shutdownTimeout bounds the OTLP exporters' final export at exit.
const shutdownTimeout = 10 * time.Second

// sinkFlags are the flags that choose where flows go besides the ring.
type sinkFlags struct {
	metrics        bool
	metricsOptions string

	clickhouse             string
	clickhousePasswordFile string
	clickhouseTLS          bool
	clickhouseCA           string
	clickhouseRetention    time.Duration
	clickhouseSpoolDir     string
	clickhouseSpoolMax     int64
	clickhouseMaxQueries   int
	clickhouseQueryTimeout time.Duration

	otlpEndpoint       string
	otlpProtocol       string
	otlpInsecure       bool
	otlpExportInterval time.Duration
}

// addMetricsFlag registers --metrics.
func (fl *sinkFlags) addMetricsFlag(f *pflag.FlagSet) {
	f.BoolVar(&fl.metrics, "metrics", false, "serve Prometheus metrics at /metrics on --listen")
}

// addClickHouseFlag registers --clickhouse (and its old name --clickhouse-dsn).
func (fl *sinkFlags) addClickHouseFlag(f *pflag.FlagSet) {
	f.StringVar(&fl.clickhouse, "clickhouse", "",
		"store flows in ClickHouse and serve them with ?source=clickhouse: tcp://host:9000?database=periscope "+
			"(user and password in the DSN, --clickhouse-password-file, or $"+clickhouse.EnvUser+" and $"+clickhouse.EnvPassword+")")
	f.StringVar(&fl.clickhouse, "clickhouse-dsn", "", "same as --clickhouse")
	_ = f.MarkDeprecated("clickhouse-dsn", "use --clickhouse")
	fl.clickhouseRetention = clickhouse.DefaultRetention
}

// addFlags registers every sink flag (those of `periscope collector`).
func (fl *sinkFlags) addFlags(f *pflag.FlagSet) {
	fl.addMetricsFlag(f)
	f.StringVar(&fl.metricsOptions, "metrics-options", "",
		`traffic metric contexts, as Hubble's: "source_context=workload;destination_context=namespace;max_series=1000"`)
	fl.addClickHouseFlag(f)
	f.StringVar(&fl.clickhousePasswordFile, "clickhouse-password-file", "", "file holding the ClickHouse password")
	f.BoolVar(&fl.clickhouseTLS, "clickhouse-tls", false, "connect to ClickHouse over TLS")
	f.StringVar(&fl.clickhouseCA, "clickhouse-ca", "", "CA bundle (PEM) to verify ClickHouse with (implies --clickhouse-tls)")
	f.DurationVar(&fl.clickhouseRetention, "clickhouse-retention", clickhouse.DefaultRetention,
		"how long ClickHouse keeps flows (whole days)")
	f.IntVar(&fl.clickhouseMaxQueries, "clickhouse-max-queries", clickhouse.DefaultMaxQueries,
		"history queries (source=clickhouse) run at once, on connections of their own; more are refused with 503")
	f.DurationVar(&fl.clickhouseQueryTimeout, "clickhouse-query-timeout", clickhouse.DefaultQueryTimeout,
		"how long one history query may run (ClickHouse's max_execution_time, and the whole answer)")
	f.StringVar(&fl.clickhouseSpoolDir, "clickhouse-spool-dir", "",
		"directory where flows wait on disk while ClickHouse is down longer than the in-memory queue holds; "+
			"a restarted collector writes them first (default: none, such flows are dropped and counted)")
	f.Int64Var(&fl.clickhouseSpoolMax, "clickhouse-spool-max-bytes", sink.DefaultSpoolMaxBytes,
		"most bytes --clickhouse-spool-dir may hold; flows beyond it are dropped and counted")
	f.StringVar(&fl.otlpEndpoint, "otlp-endpoint", "",
		"export metrics and flow logs over OTLP to host:port or a URL (default: $OTEL_EXPORTER_OTLP_ENDPOINT; unset: no export)")
	f.StringVar(&fl.otlpProtocol, "otlp-protocol", "", "grpc or http/protobuf (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
	f.BoolVar(&fl.otlpInsecure, "otlp-insecure", false, "export OTLP without TLS")
	f.DurationVar(&fl.otlpExportInterval, "otlp-export-interval", 0,
		"time between two OTLP metric exports (default: $OTEL_METRIC_EXPORT_INTERVAL, else 60s)")
}

// otlpEnabled says whether OTLP export is asked for, by flag or environment.
func (fl *sinkFlags) otlpEnabled() bool {
	return fl.otlpEndpoint != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

// collectorSinks are what the sink flags add to a collector: its Sinks,
// extra Handlers, and the ClickHouse history.
type collectorSinks struct {
	sinks    []collector.Sink
	handlers map[string]http.Handler
	// history is nil without --clickhouse.
	history flowquery.Reader

	fanout *sink.Fanout
	store  *clickhouse.Store
	otlp   *periscopeotel.Exporter
	log    *slog.Logger
	// spooled are the queues with a spool, to Close after they have run.
	spooled []*sink.Queue
}

// newCollectorSinks opens what fl asks for: Prometheus metrics (an
// observer, and /metrics), OTLP metrics (an observer) and logs (a queue),
// ClickHouse (a queue, and the history), all behind one sink.Fanout. lost
// reads the datapath's lost events for both metric exports. On error
// everything opened so far is closed.
func newCollectorSinks(ctx context.Context, fl sinkFlags, nodeName string, lost func() uint64, logger *slog.Logger) (_ *collectorSinks, err error) {
	s := &collectorSinks{handlers: map[string]http.Handler{}, log: logger}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	metricOpts, err := metrics.ParseOptions(fl.metricsOptions)
	if err != nil {
		return nil, fmt.Errorf("--metrics-options: %w", err)
	}

	var (
		queues    []*sink.Queue
		observers []sink.Observer
		prom      *metrics.Metrics
	)
	if fl.metrics {
		var handler http.Handler
		if prom, handler, err = newMetrics(metricOpts, lost, logger); err != nil {
			return nil, err
		}
		observers = append(observers, prom)
		s.handlers["GET /metrics"] = handler
	}
	if fl.otlpEnabled() {
		s.otlp, err = periscopeotel.New(ctx, periscopeotel.Options{
			Endpoint:       fl.otlpEndpoint,
			Protocol:       fl.otlpProtocol,
			Insecure:       fl.otlpInsecure,
			ExportInterval: fl.otlpExportInterval,
			NodeName:       nodeName,
			Metrics:        metricOpts,
			Logger:         logger,
		})
		if err != nil {
			return nil, fmt.Errorf("OTLP export: %w", err)
		}
		s.otlp.Metrics.AddLostEventsSource("ringbuf", lost)
		observers = append(observers, s.otlp.Metrics)
		q, err := sink.NewQueue(s.otlp.Logs, sink.QueueOptions{Logger: logger.With("component", "sink", "sink", "otel")})
		if err != nil {
			return nil, err
		}
		queues = append(queues, q)
	}
	if fl.clickhouse != "" {
		s.store, err = clickhouse.Open(ctx, clickhouse.Options{
			DSN:          fl.clickhouse,
			PasswordFile: fl.clickhousePasswordFile,
			TLS:          fl.clickhouseTLS,
			CAFile:       fl.clickhouseCA,
			Retention:    fl.clickhouseRetention,
			MaxQueries:   fl.clickhouseMaxQueries,
			QueryTimeout: fl.clickhouseQueryTimeout,
			Logger:       logger,
		})
		if err != nil {
			return nil, fmt.Errorf("--clickhouse: %w", err)
		}
		qo := clickhouse.RecommendedQueueOptions()
		qo.Logger = logger.With("component", "sink", "sink", "clickhouse")
		qo.SpoolDir, qo.SpoolMaxBytes = fl.clickhouseSpoolDir, fl.clickhouseSpoolMax
		q, err := sink.NewQueue(s.store, qo)
		if err != nil {
			return nil, fmt.Errorf("--clickhouse-spool-dir: %w", err)
		}
		queues = append(queues, q)
		s.spooled = append(s.spooled, q)
		s.history = s.store
	}

	if len(queues) == 0 && len(observers) == 0 {
		return s, nil
	}
	s.fanout = sink.NewFanout(queues, observers...)
	s.sinks = []collector.Sink{s.fanout}
	for _, q := range queues {
		if prom != nil {
			prom.AddQueues(q)
		}
		if s.otlp != nil {
			s.otlp.Metrics.AddQueues(q)
		}
	}
	return s, nil
}

// runWith runs the sinks' queues and ClickHouse retention while run runs
// (the collector). When run returns no flow comes any more: the queues then
// flush what they hold, the OTLP exporters send what is left, and the
// connections close.
func (s *collectorSinks) runWith(ctx context.Context, run func(context.Context) error) error {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if s.fanout != nil {
		wg.Go(func() { s.fanout.Run(sctx) })
	}
	if s.store != nil {
		wg.Go(func() { s.store.Run(sctx) })
	}
	err := run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(err, s.close())
}

// close shuts the OTLP export down (within shutdownTimeout) and closes
// ClickHouse. Call it after the queues have drained.
func (s *collectorSinks) close() error {
	var errs []error
	for _, q := range s.spooled {
		if err := q.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s spool: %w", q.Name(), err))
		}
	}
	s.spooled = nil
	if s.otlp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		if err := s.otlp.Shutdown(ctx); err != nil {
			s.log.Warn("OTLP shutdown", "err", err)
		}
		cancel()
		s.otlp = nil
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close clickhouse: %w", err))
		}
		s.store = nil
	}
	return errors.Join(errs...)
}
