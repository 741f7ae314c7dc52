package clickhouse

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/periscope-dev/periscope/api"
)

// insertBlockRows is how many rows Write sends per block of an INSERT.
var insertBlockRows = 16384

// insertQueryPrefix begins the query id of every insert of Write.
const insertQueryPrefix = "periscope-insert-"

// uncertainWait bounds how long Write waits for a failed insert to finish on
// the server (it may still be committing) before checking what it stored.
const uncertainWait = 10 * time.Second

// uncertainInsert is an insert whose Send failed after the data may have
// reached the server; without a query id, an insert of an earlier process
// (see WriteUncertain).
type uncertainInsert struct {
	queryID string
}

// Write inserts the batch: PrepareBatch naming every column, Append each
// flow, Send. sink.Queue calls it again with the same batch after an error;
// a retry never stores a row twice (see the package doc): when the previous
// Send failed after its data may have reached the server, Write first waits
// for that insert to leave the server, then asks which of the batch's UUIDs
// are stored and sends only the others.
func (s *Store) Write(ctx context.Context, batch []api.Flow) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	unc := s.uncertain
	s.mu.Unlock()

	rows := batch
	if unc != nil {
		stored, err := s.storedUUIDs(ctx, unc, batch)
		if err != nil {
			return fmt.Errorf("clickhouse: check a retried batch: %w", err)
		}
		if len(stored) > 0 {
			rows = make([]api.Flow, 0, len(batch))
			for i := range batch {
				if !stored[batch[i].UUID] {
					rows = append(rows, batch[i])
				}
			}
		}
		s.mu.Lock()
		s.stats.Deduplicated += uint64(len(batch) - len(rows))
		s.uncertain = nil
		s.mu.Unlock()
		if len(rows) == 0 {
			return nil
		}
	}

	qid := newQueryID()
	ictx := ch.Context(ctx, ch.WithQueryID(qid))
	if s.version.atLeast(versionDedupToken.major, versionDedupToken.minor) {
		// Newer servers deduplicate the retry themselves as well.
		ictx = ch.Context(ctx, ch.WithQueryID(qid), ch.WithSettings(ch.Settings{"insert_deduplication_token": dedupToken(rows)}))
	}
	b, err := s.conn.PrepareBatch(ictx, s.insertSQL())
	if err != nil {
		// Nothing was sent; an earlier uncertainty was resolved above.
		return fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	// The rows go as blocks of insertBlockRows within the one INSERT: the
	// server squashes them into one part (min_insert_block_size_rows), while
	// the client's buffers hold one block whatever the batch size, and
	// building a block overlaps the server's reading of the previous one.
	for lo := 0; lo < len(rows); lo += insertBlockRows {
		hi := min(lo+insertBlockRows, len(rows))
		if err := s.cols.appendRows(b, rows[lo:hi]); err != nil {
			_ = b.Abort()
			if lo > 0 {
				s.markUncertain(qid)
			}
			return fmt.Errorf("clickhouse: insert %d rows: %w", len(rows), err)
		}
		if hi == len(rows) {
			break
		}
		if err := b.Flush(); err != nil {
			_ = b.Abort()
			s.markUncertain(qid)
			return fmt.Errorf("clickhouse: insert %d rows: send a block: %w", len(rows), err)
		}
	}
	if err := b.Send(); err != nil {
		s.markUncertain(qid)
		return fmt.Errorf("clickhouse: insert %d rows: %w", len(rows), err)
	}
	s.mu.Lock()
	s.stats.Inserted += uint64(len(rows))
	s.mu.Unlock()
	return nil
}

// WriteUncertain writes a batch some of whose rows an earlier process may
// have inserted (its insert was in flight when it stopped; sink.Queue knows
// from its journal): as a retry after an uncertain insert (see Write), it
// first waits until no insert of Periscope's older than this Store runs on
// the server, then sends only the rows the table does not hold. It makes
// the Store a sink.UncertainWriter.
func (s *Store) WriteUncertain(ctx context.Context, batch []api.Flow) error {
	s.mu.Lock()
	if s.uncertain == nil {
		s.uncertain = &uncertainInsert{}
	}
	s.mu.Unlock()
	return s.Write(ctx, batch)
}

// markUncertain records that the insert qid failed after some of its data
// may have reached the server.
func (s *Store) markUncertain(qid string) {
	s.mu.Lock()
	s.uncertain = &uncertainInsert{queryID: qid}
	s.stats.UncertainSends++
	s.mu.Unlock()
}

func (s *Store) insertSQL() string {
	return fmt.Sprintf("INSERT INTO `%s`.%s (%s)", s.db, tableFlows, columnList())
}

// storedUUIDs waits until the uncertain insert is no longer running on the
// server, then returns which of the batch's UUIDs the flows table holds.
func (s *Store) storedUUIDs(ctx context.Context, unc *uncertainInsert, batch []api.Flow) (map[[16]byte]bool, error) {
	deadline := time.Now().Add(uncertainWait)
	for {
		var n uint64
		var err error
		if unc.queryID != "" {
			err = s.conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id = ?", unc.queryID).Scan(&n)
		} else {
			// An earlier process's insert: its id is unknown, but it
			// started before this Store opened.
			err = s.conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id LIKE ? AND elapsed > ?",
				insertQueryPrefix+"%", time.Since(s.opened).Seconds()).Scan(&n)
		}
		if err != nil {
			return nil, fmt.Errorf("look for the failed insert: %w", err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			what := unc.queryID
			if what == "" {
				what = "of an earlier process"
			}
			return nil, fmt.Errorf("the failed insert %s is still running after %s", what, uncertainWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return s.stored(ctx, batch)
}

// storedUUIDsTable names the external table that carries a batch's UUIDs
// to the server for stored.
const storedUUIDsTable = "periscope_batch_uuids"

// stored returns the UUIDs of batch that the flows table holds. The UUIDs
// travel as an external table (a data block sent with the query, which the
// server turns into the hash set of IN): a literal list would be parsed as
// query text, ≈ 36 bytes a UUID against max_query_size, and compared row by
// row, which took seconds for a batch of 20,000 on a busy server (longer
// than the I/O timeout, so each retry left one more such query running).
func (s *Store) stored(ctx context.Context, batch []api.Flow) (map[[16]byte]bool, error) {
	ids, err := ext.NewTable(storedUUIDsTable, ext.Column("uuid", "FixedString(16)"))
	if err != nil {
		return nil, fmt.Errorf("batch UUIDs table: %w", err)
	}
	lo, hi := batch[0].Time, batch[0].Time
	for i := range batch {
		t := batch[i].Time
		if t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
		if err := ids.Append(batch[i].UUID[:]); err != nil {
			return nil, fmt.Errorf("batch UUIDs table: %w", err)
		}
	}
	res, err := s.conn.Query(ch.Context(ctx, ch.WithExternalTable(ids)), fmt.Sprintf(
		"SELECT uuid FROM `%s`.%s WHERE time >= toDateTime(?) AND time <= toDateTime(?) AND uuid IN %s",
		s.db, tableFlows, storedUUIDsTable),
		uint32(lo.Unix()), uint32(hi.Unix()))
	if err != nil {
		return nil, fmt.Errorf("look for the batch's rows: %w", err)
	}
	defer res.Close()
	stored := map[[16]byte]bool{}
	for res.Next() {
		var u string
		if err := res.Scan(&u); err != nil {
			return nil, fmt.Errorf("look for the batch's rows: %w", err)
		}
		var id [16]byte
		copy(id[:], u)
		stored[id] = true
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("look for the batch's rows: %w", err)
	}
	return stored, nil
}

// dedupToken names a set of rows for insert_deduplication_token.
func dedupToken(rows []api.Flow) string {
	h := sha256.New()
	for i := range rows {
		h.Write(rows[i].UUID[:])
	}
	return "periscope-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return insertQueryPrefix + hex.EncodeToString(b[:])
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
