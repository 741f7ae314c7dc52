// Package clickhouse owns Periscope's ClickHouse storage: the schema and its
// migrations, the sink that relays flow records into it (a sink.Sink behind a
// sink.Queue), retention, and history queries that turn filters into
// parameterised SQL; and, as a sink plugin (Plugin), the --clickhouse*
// flags. It must not know about HTTP or the datapath.
//
// # Schema
//
// flows holds one row per flow record. Time is stored as time (DateTime,
// whole UTC seconds: partitions and the sort key use it) plus time_ns
// (UInt32 nanoseconds within the second), because ClickHouse 18.16 has no
// DateTime64. Addresses are FixedString(16) (IPv6 bytes, IPv4 mapped; zero
// for none), labels are two parallel arrays (keys "source:key", values).
// The table is PARTITIONED BY toYYYYMMDD(time), so retention drops whole days
// and a time range prunes the days it misses, and ORDER BY (src_namespace,
// src_pod, verdict, time) for "what did this namespace or pod do, what was
// dropped" within a range. flows_1m is a SummingMergeTree of per-minute
// rollups by source and destination namespace/workload and verdict, kept by
// the materialized view flows_1m_mv. Records are cumulative per connection,
// so a connection adds its bytes and packets once, from its End record;
// "flows" counts Start records (connections begun), "drops" dropped ones.
//
// An L7 record (api.L7, Hubble's Layer7) is spread over columns: l7_type,
// l7_protocol ("http", "dns", "kafka"), l7_latency_ns, http_method,
// http_path (the URL), http_status, http_protocol, the headers as two
// parallel arrays, dns_* and kafka_* (schema.go lists them); a flow without
// one has zero values there, and a row with neither a protocol nor a type
// reads back without a record. Migration 1 reserved the first six; migration
// 4 adds the others; migration 8 adds trace_id (api.L7.TraceID, the
// trace-id filter kind's column).
//
// A flow's DNS names (source_names, destination_names) are src_names and
// dst_names, Array(String), added by migration 6; the dns filter kind reads
// them with has() for a name and arrayExists(match()) for a pattern (the
// same RE2 expression Go matches with).
//
// Migrations are numbered and recorded in schema_migrations; every statement
// is idempotent, so a rerun is a no-op and two collectors may race (a column
// is added only when system.columns lacks it: 18.16 has no ADD COLUMN IF NOT
// EXISTS). Features
// newer than 18.16 sit behind a server-version check: TTL (19.6+), the
// non_replicated_deduplication_window table setting (21.1+) and
// insert_deduplication_token (22.2+).
//
// # Inserts
//
// Write sends a batch as one INSERT in blocks of insertBlockRows rows; the
// server squashes the blocks of an INSERT into one part (up to
// min_insert_block_size_rows, 1Mi rows), so a batch costs one part (and one
// in the rollup) however many blocks it is sent in, while the client holds
// the columns of one block only. Scalar columns are appended as whole typed
// slices, arrays row by row as []string: no reflection, no per-value boxing
// (an empty array goes as a nil slice, which boxes without allocating: the
// L7 arrays of an L3/L4 flow cost no allocation).
//
// # Exactly once
//
// sink.Queue retries a failed Write with the same batch. A batch whose Send
// failed may nevertheless be stored (the server committed, then the
// connection broke before the acknowledgement). Write remembers such an
// uncertain insert by its query id. Before the next Write it waits until
// that query id has left system.processes (so the insert is committed or
// abandoned, not in flight), then selects which of the batch's flow UUIDs
// the table holds (in the batch's time range, so only its partitions are
// read) and sends only the others. The UUIDs are per record (the datapath
// draws a random one for each), so this never hides a distinct record.
// Servers with insert_deduplication_token (22.2+) also get a token derived
// from the UUIDs sent, so the server deduplicates a resend on its own.
//
// # Outages
//
// The sink holds no flows of its own: during an outage the Queue holds
// them (up to its Capacity; drops beyond it are counted exactly by
// Queue.Stats) and retries; give it MaxAttempts high enough to outlast the
// outages it should survive (RecommendedQueueOptions). For longer outages
// give the Queue a spool (sink.QueueOptions.SpoolDir, the collector's
// --clickhouse-spool-dir): batches beyond half its Capacity go to disk and
// are written back in order, before newer ones, when ClickHouse returns or
// the collector restarts. A batch is spooled whole and sent whole, so a
// retry after an uncertain insert is still the same batch and deduplicated
// as above. A server that hangs rather than refuses (stopped, stuck on a
// disk) is an outage too: every read and write on its connections is
// bounded by Options.IOTimeout, so the insert fails and is retried instead
// of holding the sink's writer and the collector's shutdown. Not covered: a crash between an acknowledged insert and the
// removal of its segment, or a shutdown that spools a batch whose insert
// was uncertain, resends that batch once after the restart.
//
// # Queries
//
// Store is the flowquery.Reader of history: Query translates the query's
// filter.Set (where.go: an OR of allowed filters, each an AND of terms, and
// NOT of each denied filter) into a WHERE clause whose values are all bound
// "?" parameters (clickhouse-go quotes them) and whose identifiers come from
// a fixed allow-list of columns; kindSQL holds every filter kind's SQL. A
// term SQL cannot express exactly (a node glob, a regular expression, a
// kind without columns, a filter.Predicate) is narrowed by its kind's
// condition (kindNarrowing: a regular expression on URLs selects HTTP
// records) or left out, which selects a superset (a denied filter with such
// a term is left out whole); the set's Match is applied to every row read
// anyway, and First and Last then count in Go (Last by walking back from
// the newest row to its Nth match, then reading forward from there).
// Follow answers flowquery.ErrNotLive.
//
// Reads must not hurt ingestion nor outlive their clients (reads.go): they
// run on a pool of connections of their own, never the sink's, at most
// Options.MaxQueries at once (one more is refused with flowquery.ErrBusy,
// a 503), each bounded by Options.QueryTimeout on the server
// (max_execution_time) and as a whole, on Options.QueryThreads server
// threads, in blocks of a few thousand rows. Each has a query id and is
// killed on the server (KILL QUERY) when its context ends first: the
// client went, or the reader has what it wants. Rows go to the answer as
// they arrive, so an answer is never held whole in memory. The plugin's
// --clickhouse-max-queries and --clickhouse-query-timeout set the two
// bounds.
package clickhouse
