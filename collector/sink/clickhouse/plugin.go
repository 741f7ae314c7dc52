package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
)

// Plugin is the ClickHouse store as a sink plugin: --clickhouse stores every
// flow behind a queue with RecommendedQueueOptions (and --clickhouse-spool-dir),
// and drops old partitions while the collector runs.
type Plugin struct {
	dsn          string
	passwordFile string
	tls          bool
	caFile       string
	retention    time.Duration
	spoolDir     string
	spoolMax     int64
	maxQueries   int
	queryTimeout time.Duration

	store *Store
}

// NewPlugin returns the plugin with its flags' defaults.
func NewPlugin() *Plugin {
	return &Plugin{retention: DefaultRetention, spoolMax: sink.DefaultSpoolMaxBytes,
		maxQueries: DefaultMaxQueries, queryTimeout: DefaultQueryTimeout}
}

// Name implements sink.Plugin.
func (*Plugin) Name() string { return SinkName }

// AddFlags implements sink.Plugin: --clickhouse (and its old name
// --clickhouse-dsn) with every scope, the other --clickhouse-* flags with all
// flags.
func (p *Plugin) AddFlags(f *pflag.FlagSet, scope sink.FlagScope) {
	f.StringVar(&p.dsn, "clickhouse", "",
		"store flows in ClickHouse and serve them with ?source=clickhouse: tcp://host:9000?database=periscope "+
			"(user and password in the DSN, --clickhouse-password-file, or $"+EnvUser+" and $"+EnvPassword+")")
	f.StringVar(&p.dsn, "clickhouse-dsn", "", "same as --clickhouse")
	_ = f.MarkDeprecated("clickhouse-dsn", "use --clickhouse")
	if scope != sink.AllFlags {
		return
	}
	f.StringVar(&p.passwordFile, "clickhouse-password-file", "", "file holding the ClickHouse password")
	f.BoolVar(&p.tls, "clickhouse-tls", false, "connect to ClickHouse over TLS")
	f.StringVar(&p.caFile, "clickhouse-ca", "", "CA bundle (PEM) to verify ClickHouse with (implies --clickhouse-tls)")
	f.DurationVar(&p.retention, "clickhouse-retention", DefaultRetention, "how long ClickHouse keeps flows (whole days)")
	f.IntVar(&p.maxQueries, "clickhouse-max-queries", DefaultMaxQueries,
		"history queries (source=clickhouse) run at once, on connections of their own; more are refused with 503")
	f.DurationVar(&p.queryTimeout, "clickhouse-query-timeout", DefaultQueryTimeout,
		"how long one history query may run (ClickHouse's max_execution_time, and the whole answer)")
	f.StringVar(&p.spoolDir, "clickhouse-spool-dir", "",
		"directory where flows wait on disk while ClickHouse is down longer than the in-memory queue holds; "+
			"a restarted collector writes them first (default: none, such flows are dropped and counted)")
	f.Int64Var(&p.spoolMax, "clickhouse-spool-max-bytes", sink.DefaultSpoolMaxBytes,
		"most bytes --clickhouse-spool-dir may hold; flows beyond it are dropped and counted")
}

// Open implements sink.Plugin: the store, its queue, its retention.
func (p *Plugin) Open(ctx context.Context, env sink.Env) (*sink.Part, error) {
	if p.dsn == "" {
		return nil, nil
	}
	store, err := Open(ctx, p.options(env))
	if err != nil {
		return nil, fmt.Errorf("--clickhouse: %w", err)
	}
	qo := RecommendedQueueOptions()
	qo.Logger = env.Logger.With("component", "sink", "sink", SinkName)
	qo.SpoolDir, qo.SpoolMaxBytes = p.spoolDir, p.spoolMax
	q, err := sink.NewQueue(store, qo)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("--clickhouse-spool-dir: %w", err)
	}
	p.store = store
	return &sink.Part{
		Queues: []*sink.Queue{q},
		Run:    store.Run,
		Close: func(context.Context) error {
			if err := store.Close(); err != nil {
				return fmt.Errorf("close clickhouse: %w", err)
			}
			return nil
		},
	}, nil
}

// options are the store's Options as the flags set them.
func (p *Plugin) options(env sink.Env) Options {
	return Options{
		DSN:          p.dsn,
		PasswordFile: p.passwordFile,
		TLS:          p.tls,
		CAFile:       p.caFile,
		Retention:    p.retention,
		MaxQueries:   p.maxQueries,
		QueryTimeout: p.queryTimeout,
		Logger:       env.Logger,
	}
}

// Store is the store Open opened, for the history reader; nil when
// --clickhouse was not given (or before Open).
func (p *Plugin) Store() *Store { return p.store }
