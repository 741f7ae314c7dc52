package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/periscope-dev/periscope/api"
)

// How history reads are kept from hurting ingestion, and from outliving
// their clients:
//
//   - they have their own connections (Store.reads; writes never wait for
//     one), at most Options.MaxQueries at once (more are refused: a 503),
//     plus spare ones for KILL QUERY;
//   - the server gives each up after Options.QueryTimeout of its work
//     (max_execution_time), and so does the store for the whole answer;
//     the server sends it in blocks of readBlockRows rows and runs it on at
//     most Options.QueryThreads threads, so reads leave cores to inserts;
//   - each has a query id; when its context ends before it is done (the
//     client went, or the reader stopped early), it is killed on the
//     server (KILL QUERY), which otherwise runs it to its end;
//   - rows go to the caller one by one as blocks arrive: an answer is
//     never gathered in memory (at most a few blocks are in flight).

// readBlockRows is the block size of history reads (max_block_size): with
// clickhouse-go's buffer of blocks, what one read holds in memory.
const readBlockRows = 4096

// killTimeout bounds a KILL QUERY.
const killTimeout = 5 * time.Second

// read runs one history query: begin is called once the server has
// accepted it, row with each row's flow (its own, to keep) until row
// returns false or an error. Stopping early, a failure or the end of ctx
// kills the query on the server.
func (s *Store) read(ctx context.Context, query string, args []any, begin func() error, row func(*api.Flow) (bool, error)) (err error) {
	qctx, cancel := context.WithCancel(ctx)
	id := readQueryID()
	qctx = ch.Context(qctx, ch.WithQueryID(id), ch.WithSettings(ch.Settings{
		"max_execution_time": max(1, int(s.opts.QueryTimeout.Round(time.Second).Seconds())),
		"max_block_size":     readBlockRows,
		"max_threads":        s.opts.QueryThreads,
	}))
	// Any end of qctx before the query is done kills it: the client went,
	// the reader stopped early, or reading failed.
	stopKill := context.AfterFunc(qctx, func() { s.kill(id) })
	finished := false
	defer func() {
		if finished {
			stopKill()
		}
		cancel()
	}()

	rows, err := s.reads.Query(qctx, query, args...)
	if err != nil {
		return fmt.Errorf("clickhouse: query flows: %w", err)
	}
	// Close reads whatever is left: cancel first when stopping early.
	defer func() {
		if !finished {
			cancel()
		}
		rows.Close()
	}()
	if err := begin(); err != nil {
		return err
	}
	var d rowDecoder
	d.init()
	for rows.Next() {
		if err := rows.Scan(d.ptrs...); err != nil {
			return fmt.Errorf("clickhouse: read flow: %w", err)
		}
		fl := d.flow()
		more, err := row(&fl)
		if err != nil || !more {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("clickhouse: read flows: %w", err)
	}
	finished = true
	return nil
}

// kill asks the server to stop the query id, on a connection of its own
// (history reads keep spare ones), and does not wait for it to stop.
func (s *Store) kill(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if err := s.reads.Exec(ctx, "KILL QUERY WHERE query_id = ? ASYNC", id); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("killing an abandoned history query failed", "query_id", id, "err", err)
		return
	}
	s.log.Debug("killed an abandoned history query", "query_id", id)
}

// readQueryIDPrefix starts the query id of every history read.
const readQueryIDPrefix = "periscope-read-"

func readQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return readQueryIDPrefix + hex.EncodeToString(b[:])
}
