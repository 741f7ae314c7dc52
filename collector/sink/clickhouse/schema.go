package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Table names. They are constants, and the database name passes identRE, so
// every identifier in the package's SQL comes from an allow-list.
const (
	tableFlows      = "flows"
	tableFlows1m    = "flows_1m"
	viewFlows1m     = "flows_1m_mv"
	tableMigrations = "schema_migrations"
)

// column is one column of the flows table.
type column struct{ name, typ string }

// flowColumns are the flows table's columns in the order rows are appended
// (write.go) and scanned (query.go): those migration 1 created, then those
// later migrations added. Both use this list, so the INSERT always names
// every column and a SELECT always reads them in this order.
var flowColumns = slices.Concat(flowColumnsV1, l7Columns, policyRefColumns, namesColumns, pointColumns, traceColumns)

// flowColumnsV1 are the columns migration 1 creates; released, never changed.
var flowColumnsV1 = []column{
	{"time", "DateTime"},  // whole seconds (UTC); partitions and the sort key use it
	{"time_ns", "UInt32"}, // nanoseconds within the second
	{"uuid", "FixedString(16)"},
	{"node", "String"},
	{"event", "UInt8"}, // api.EventKind
	{"type", "UInt8"},  // api.FlowType
	{"verdict", "UInt8"},
	{"drop_reason", "UInt16"},
	{"direction", "UInt8"},
	{"is_reply", "UInt8"},
	{"initiator_hook", "UInt8"},
	{"ip_version", "UInt8"},
	{"src_ip", "FixedString(16)"}, // IPv6 bytes, IPv4 mapped (::ffff:a.b.c.d); zero: no address
	{"dst_ip", "FixedString(16)"},
	{"protocol", "UInt8"},
	{"src_port", "UInt16"},
	{"dst_port", "UInt16"},
	{"icmp_type", "UInt8"},
	{"icmp_code", "UInt8"},
	{"tcp_flags", "UInt16"},
	{"src_id", "UInt32"},
	{"src_identity", "UInt32"},
	{"src_namespace", "String"},
	{"src_pod", "String"},
	{"src_workload", "String"},
	{"src_labels_keys", "Array(String)"}, // "source:key" (the part before '=')
	{"src_labels_values", "Array(String)"},
	{"dst_id", "UInt32"},
	{"dst_identity", "UInt32"},
	{"dst_namespace", "String"},
	{"dst_pod", "String"},
	{"dst_workload", "String"},
	{"dst_labels_keys", "Array(String)"},
	{"dst_labels_values", "Array(String)"},
	{"iface_index", "UInt32"},
	{"iface_name", "String"},
	{"start_ns", "Int64"}, // unix nanoseconds; 0: unset
	{"end_ns", "Int64"},
	{"packets_fwd", "UInt64"},
	{"bytes_fwd", "UInt64"},
	{"packets_rev", "UInt64"},
	{"bytes_rev", "UInt64"},
	{"pid", "UInt32"},
	{"comm", "String"},
	{"cgroup_id", "UInt64"},
	{"ingress_allowed_by", "Array(String)"},
	{"egress_allowed_by", "Array(String)"},
	{"ingress_denied_by", "Array(String)"},
	{"egress_denied_by", "Array(String)"},
	// L7: reserved by migration 1, filled since migration 4 (with l7Columns).
	{"l7_protocol", "String"}, // "http", "dns", "kafka"; "" for a flow without an L7 record
	{"http_method", "String"},
	{"http_path", "String"},   // the request's URL, as Hubble's http.url carries it
	{"http_status", "UInt16"}, // the response's code (one above 65535 is stored as 65535)
	{"l7_latency_ns", "UInt64"},
	{"dns_query", "String"},
}

// l7Columns are the rest of the L7 record (api.L7), added by migration 4.
var l7Columns = []column{
	{"l7_type", "UInt8"}, // api.L7FlowType
	{"http_protocol", "String"},
	{"http_headers_keys", "Array(String)"},
	{"http_headers_values", "Array(String)"},
	{"dns_ips", "Array(String)"},
	{"dns_ttl", "UInt32"},
	{"dns_cnames", "Array(String)"},
	{"dns_observation_source", "String"},
	{"dns_rcode", "UInt32"},
	{"dns_qtypes", "Array(String)"},
	{"dns_rrtypes", "Array(String)"},
	{"kafka_error_code", "Int32"},
	{"kafka_api_version", "Int32"},
	{"kafka_api_key", "String"},
	{"kafka_correlation_id", "Int32"},
	{"kafka_topic", "String"},
}

// policyRefColumns are the deciding policies' kinds and revisions, item by
// item beside the refs ("namespace/name") of the *_by columns, added by
// migration 5 (empty in older rows).
var policyRefColumns = []column{
	{"ingress_allowed_by_kind", "Array(String)"},
	{"egress_allowed_by_kind", "Array(String)"},
	{"ingress_denied_by_kind", "Array(String)"},
	{"egress_denied_by_kind", "Array(String)"},
	{"ingress_allowed_by_revision", "Array(UInt64)"},
	{"egress_allowed_by_revision", "Array(UInt64)"},
	{"ingress_denied_by_revision", "Array(UInt64)"},
	{"egress_denied_by_revision", "Array(UInt64)"},
}

// namesColumns are a flow's DNS names (api.Flow.SourceNames,
// DestinationNames; Hubble's source_names, destination_names), added by
// migration 6.
var namesColumns = []column{
	{"src_names", "Array(String)"},
	{"dst_names", "Array(String)"},
}

// pointColumns are a connection's second observation point on the node
// (api.Flow.Other: its interface, hook, direction, verdict and counts) and
// the process of the responder's socket (api.Flow.DestinationProcess),
// added by migration 7 (zero in older rows: one point, no such process).
var pointColumns = []column{
	{"other_iface_index", "UInt32"}, // 0: the record has one observation point
	{"other_iface_name", "String"},
	{"other_initiator_hook", "UInt8"},
	{"other_direction", "UInt8"},
	{"other_verdict", "UInt8"},
	{"other_drop_reason", "UInt16"},
	{"other_packets_fwd", "UInt64"},
	{"other_bytes_fwd", "UInt64"},
	{"other_packets_rev", "UInt64"},
	{"other_bytes_rev", "UInt64"},
	{"dst_pid", "UInt32"},
	{"dst_comm", "String"},
	{"dst_cgroup_id", "UInt64"},
}

// traceColumns are an L7 record's W3C trace ID (api.L7.TraceID; Hubble's
// trace_context), added by migration 8 (empty in older rows).
var traceColumns = []column{
	{"trace_id", "String"},
}

// columnList is "time, time_ns, ..." for INSERT and SELECT.
func columnList() string {
	names := make([]string, len(flowColumns))
	for i, c := range flowColumns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// serverVersion is the ClickHouse server's major.minor.patch.
type serverVersion struct{ major, minor, patch uint64 }

func (v serverVersion) atLeast(major, minor uint64) bool {
	return v.major > major || v.major == major && v.minor >= minor
}

func (v serverVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch) }

// Version thresholds of the features used behind a check.
var (
	// TTL on MergeTree tables (19.6).
	versionTTL = serverVersion{19, 6, 0}
	// MergeTree setting non_replicated_deduplication_window (20.11, stable in 21.x).
	versionDedupWindow = serverVersion{21, 1, 0}
	// Query setting insert_deduplication_token (22.2).
	versionDedupToken = serverVersion{22, 2, 0}
)

// migration is one schema step. Every statement is idempotent (IF NOT
// EXISTS, or a MODIFY that converges), so a migration interrupted half way,
// or run by two collectors at once, is safe to run again; columns are added
// only when the table lacks them (addColumns: ClickHouse 18.16 has no ADD
// COLUMN IF NOT EXISTS). A migration whose minVersion the server does not
// reach is skipped and not recorded, so it runs once the server is upgraded.
type migration struct {
	version    uint32
	name       string
	minVersion serverVersion
	stmts      func(db string) []string
	// addColumns are added to the flows table, after stmts.
	addColumns []column
}

// migrations are applied in order; never change or reorder a released one:
// append a new one.
var migrations = []migration{
	{version: 1, name: "flows table", stmts: func(db string) []string {
		var cols strings.Builder
		for i, c := range flowColumnsV1 {
			if i > 0 {
				cols.WriteString(",\n  ")
			}
			cols.WriteString(c.name + " " + c.typ)
		}
		// Daily partitions: retention drops whole days with DROP PARTITION,
		// and a time range prunes the days it does not touch. Within a day
		// the sort key serves "what did namespace/pod X do (and what was
		// dropped)": a namespace or pod prefix narrows to a key range, the
		// verdict next, then time. Queries by destination or by time alone
		// scan the day's partitions, which is what a day's partition holds.
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s`.%s (\n  %s\n) ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(time)\nORDER BY (src_namespace, src_pod, verdict, time)",
			db, tableFlows, cols.String())}
	}},
	{version: 2, name: "per-minute rollup", stmts: func(db string) []string {
		// Records are cumulative per connection, so adding every record's
		// bytes would count a long connection once per report. A connection
		// contributes its bytes and packets once, from its End record (in
		// the minute it ended); "flows" counts connections started (Start
		// records), "ended" those that ended, "drops" started connections
		// with a DROPPED verdict, "records" every record.
		return []string{
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s`.%s (\n"+
				"  minute DateTime, src_namespace String, src_workload String,\n"+
				"  dst_namespace String, dst_workload String, verdict UInt8,\n"+
				"  records UInt64, flows UInt64, ended UInt64, drops UInt64, packets UInt64, bytes UInt64\n"+
				") ENGINE = SummingMergeTree\nPARTITION BY toYYYYMMDD(minute)\n"+
				"ORDER BY (minute, src_namespace, src_workload, dst_namespace, dst_workload, verdict)", db, tableFlows1m),
			fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS `%[1]s`.%[2]s TO `%[1]s`.%[3]s AS SELECT\n"+
				"  toStartOfMinute(time) AS minute, src_namespace, src_workload, dst_namespace, dst_workload, verdict,\n"+
				"  count() AS records,\n"+
				"  countIf(event = %[5]d) AS flows,\n"+
				"  countIf(event = %[6]d) AS ended,\n"+
				"  countIf(event = %[5]d AND verdict = %[7]d) AS drops,\n"+
				"  sumIf(packets_fwd + packets_rev, event = %[6]d) AS packets,\n"+
				"  sumIf(bytes_fwd + bytes_rev, event = %[6]d) AS bytes\n"+
				"FROM `%[1]s`.%[4]s\n"+
				"GROUP BY minute, src_namespace, src_workload, dst_namespace, dst_workload, verdict",
				db, viewFlows1m, tableFlows1m, tableFlows, eventStart, eventEnd, verdictDropped),
		}
	}},
	{version: 3, name: "insert deduplication window", minVersion: versionDedupWindow, stmts: func(db string) []string {
		// Lets insert_deduplication_token work on a non-replicated table.
		return []string{fmt.Sprintf("ALTER TABLE `%s`.%s MODIFY SETTING non_replicated_deduplication_window = 1000", db, tableFlows)}
	}},
	{version: 4, name: "L7 columns", stmts: func(string) []string { return nil }, addColumns: l7Columns},
	// Hubble names a deciding policy by name, namespace, kind and revision;
	// the *_by columns keep "namespace/name".
	{version: 5, name: "policy kinds and revisions", stmts: func(string) []string { return nil }, addColumns: policyRefColumns},
	{version: 6, name: "DNS names", stmts: func(string) []string { return nil }, addColumns: namesColumns},
	// A connection seen at two interfaces of the node is one record with
	// both points' verdicts and counts; socket closes merge into it.
	{version: 7, name: "observation points and destination process", stmts: func(string) []string { return nil }, addColumns: pointColumns},
	{version: 8, name: "trace ID", stmts: func(string) []string { return nil }, addColumns: traceColumns},
}

// migrate creates the database and applies the migrations not yet recorded
// in schema_migrations. Running it again is a no-op.
func (s *Store) migrate(ctx context.Context) error {
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s`", s.db),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s`.%s (version UInt32, name String, applied DateTime) ENGINE = MergeTree ORDER BY version", s.db, tableMigrations),
	}
	for _, q := range stmts {
		if err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("clickhouse: %s: %w", firstWords(q), err)
		}
	}
	applied := map[uint32]bool{}
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT version FROM `%s`.%s", s.db, tableMigrations))
	if err != nil {
		return fmt.Errorf("clickhouse: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("clickhouse: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: read schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		if !s.version.atLeast(m.minVersion.major, m.minVersion.minor) {
			s.log.Debug("migration skipped: server too old", "migration", m.version, "name", m.name, "server", s.version, "needs", m.minVersion)
			continue
		}
		var stmts []string
		if m.stmts != nil {
			stmts = m.stmts(s.db)
		}
		for _, q := range stmts {
			if err := s.conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("clickhouse: migration %d (%s): %s: %w", m.version, m.name, firstWords(q), err)
			}
		}
		if err := s.addColumns(ctx, m.addColumns); err != nil {
			return fmt.Errorf("clickhouse: migration %d (%s): %w", m.version, m.name, err)
		}
		if err := s.recordMigration(ctx, m); err != nil {
			return fmt.Errorf("clickhouse: record migration %d: %w", m.version, err)
		}
		s.migrationsRun++
		s.log.Info("schema migration applied", "migration", m.version, "name", m.name)
	}
	return nil
}

// addColumns adds to the flows table the columns it lacks. Another
// collector migrating at the same time may add one first: an ADD that fails
// while the column is then there is no error.
func (s *Store) addColumns(ctx context.Context, cols []column) error {
	if len(cols) == 0 {
		return nil
	}
	have, err := s.tableColumns(ctx)
	if err != nil {
		return err
	}
	for _, c := range cols {
		if have[c.name] {
			continue
		}
		q := fmt.Sprintf("ALTER TABLE `%s`.%s ADD COLUMN %s %s", s.db, tableFlows, c.name, c.typ)
		if err := s.conn.Exec(ctx, q); err != nil {
			if now, rerr := s.tableColumns(ctx); rerr == nil && now[c.name] {
				continue
			}
			return fmt.Errorf("add column %s: %w", c.name, err)
		}
	}
	return nil
}

// tableColumns are the names of the flows table's columns.
func (s *Store) tableColumns(ctx context.Context) (map[string]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ?", s.db, tableFlows)
	if err != nil {
		return nil, fmt.Errorf("read the flows table's columns: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read the flows table's columns: %w", err)
		}
		have[name] = true
	}
	return have, rows.Err()
}

// firstWords names a statement in errors without dumping all of it.
func firstWords(q string) string {
	f := strings.Fields(q)
	return strings.Join(f[:min(len(f), 6)], " ")
}

func (s *Store) recordMigration(ctx context.Context, m migration) error {
	b, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO `%s`.%s (version, name, applied)", s.db, tableMigrations))
	if err != nil {
		return err
	}
	if err := b.Append(m.version, m.name, time.Now()); err != nil {
		_ = b.Abort()
		return err
	}
	return b.Send()
}
