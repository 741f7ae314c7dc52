package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// applyTTL sets a TTL on the tables where the server supports it (19.6+),
// so that expired rows go even between DropExpired runs. It is re-applied on
// every Open, so a changed Retention takes effect. DropExpired works on every
// version and stays the guarantee.
func (s *Store) applyTTL(ctx context.Context) error {
	if !s.version.atLeast(versionTTL.major, versionTTL.minor) {
		return nil
	}
	days := retentionDays(s.opts.Retention)
	for _, t := range []struct{ table, col string }{{tableFlows, "time"}, {tableFlows1m, "minute"}} {
		q := fmt.Sprintf("ALTER TABLE `%s`.%s MODIFY TTL %s + toIntervalDay(%d)", s.db, t.table, t.col, days)
		if err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("clickhouse: set TTL on %s: %w", t.table, err)
		}
	}
	return nil
}

// retentionDays rounds the retention up to whole days (partitions).
func retentionDays(d time.Duration) int {
	return max(1, int((d+24*time.Hour-1)/(24*time.Hour)))
}

// DropExpired drops the daily partitions of the flows and rollup tables
// whose whole day is older than now minus Retention, and returns how many
// it dropped.
func (s *Store) DropExpired(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.UTC().Add(-s.opts.Retention)
	// A partition (day D) may go when D+1 00:00 <= cutoff, i.e. D < the cutoff's day.
	cutDay, _ := strconv.ParseUint(cutoff.Format("20060102"), 10, 32)
	dropped := 0
	for _, table := range []string{tableFlows, tableFlows1m} {
		rows, err := s.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active", s.db, table)
		if err != nil {
			return dropped, fmt.Errorf("clickhouse: list partitions of %s: %w", table, err)
		}
		var old []uint64
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return dropped, fmt.Errorf("clickhouse: list partitions of %s: %w", table, err)
			}
			day, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				continue // not one of our daily partitions
			}
			if day < cutDay {
				old = append(old, day)
			}
		}
		rows.Close()
		for _, day := range old {
			// The partition is a number checked above, bound as a parameter.
			if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE `%s`.%s DROP PARTITION ?", s.db, table), day); err != nil {
				return dropped, fmt.Errorf("clickhouse: drop partition %d of %s: %w", day, table, err)
			}
			dropped++
		}
	}
	return dropped, nil
}
