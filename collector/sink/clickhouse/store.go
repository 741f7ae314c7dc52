package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// Numeric enum values used in SQL text (constants of the program, not data).
const (
	eventStart     = int(api.EventStart)
	eventEnd       = int(api.EventEnd)
	verdictDropped = int(api.VerdictDropped)
)

// Store is a connection to ClickHouse holding Periscope's schema. It is a
// sink.Sink (Write) for one sink.Queue and answers history queries (Query)
// from any goroutine. Create it with Open; Run drops old partitions; Close
// releases the connections.
type Store struct {
	conn    driver.Conn
	reads   driver.Conn      // history reads' own pool (reads.go)
	queries *flowquery.Limit // history reads at once
	db      string
	opts    Options
	log     *slog.Logger
	version serverVersion

	migrationsRun int // migrations applied by Open (for tests)

	// Write's state; Write is called from one goroutine at a time, the mutex
	// only keeps the race detector and Stats honest.
	mu        sync.Mutex
	uncertain *uncertainInsert // the last insert failed after its data may have reached the server
	cols      columnBuilder    // Write's scratch space
	stats     WriteStats
}

// Open connects, reads the server's version, creates the database if
// missing and brings the schema up to date.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	copts, db, err := opts.clientOptions()
	if err != nil {
		return nil, err
	}
	conn, err := ch.Open(copts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	reads, err := ch.Open(opts.readOptions(copts))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse: open: %w", err)
	}
	s := &Store{conn: conn, reads: reads, db: db, opts: opts, log: opts.Logger,
		queries: flowquery.NewLimit("history queries", opts.MaxQueries)}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	sv, err := s.conn.ServerVersion()
	if err != nil {
		return fmt.Errorf("clickhouse: connect to %v: %w", s.conn.Stats(), err)
	}
	s.version = serverVersion{sv.Version.Major, sv.Version.Minor, sv.Version.Patch}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if err := s.applyTTL(ctx); err != nil {
		return err
	}
	s.log.Info("clickhouse ready", "server", s.version, "database", s.db, "retention", s.opts.Retention)
	return nil
}

// ServerVersion is the server's version, e.g. "18.16.1".
func (s *Store) ServerVersion() string { return s.version.String() }

// Database is the database the store uses.
func (s *Store) Database() string { return s.db }

// Name is the sink's name.
func (s *Store) Name() string { return SinkName }

// Close releases the connections.
func (s *Store) Close() error { return errors.Join(s.conn.Close(), s.reads.Close()) }

// Run drops expired partitions every RetentionInterval (and once at once)
// until ctx is done.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.RetentionInterval)
	defer t.Stop()
	for {
		if n, err := s.DropExpired(ctx, time.Now()); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("retention: dropping old partitions failed", "err", err)
		} else if n > 0 {
			s.log.Info("retention: dropped old partitions", "partitions", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WriteStats are the sink's own counts, beyond the Queue's.
type WriteStats struct {
	Inserted       uint64 // rows inserted
	Deduplicated   uint64 // rows of retried batches found already stored and not sent again
	UncertainSends uint64 // inserts that failed after their data may have reached the server
}

// Stats returns the sink's counts.
func (s *Store) Stats() WriteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
