package clickhouse

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/periscope-dev/periscope/api"
)

// benchRows is how many rows each side of the benchmark inserts per round.
const benchRows = 200000

// BenchmarkSinkVsClickhouseClient inserts the same rows through the sink
// (Write in batches of RecommendedQueueOptions().BatchSize; PERISCOPE_BENCH_BATCH overrides it, and
// PERISCOPE_BENCH_BLOCK the rows per block of an INSERT) and through
// `clickhouse-client --query "INSERT INTO ... FORMAT TSV"` (one process
// fed a TSV file), and reports both rates and their ratio (goal >= 0.8).
//
//	go test ./collector/sink/clickhouse/ -run '^$' -bench SinkVsClickhouseClient -benchtime 3x
func BenchmarkSinkVsClickhouseClient(b *testing.B) {
	s, srv := openStore(b, nil, "periscope")
	flows := genFlows(99, benchRows, time.Now().UTC().Add(-time.Hour))
	tsv := filepath.Join(b.TempDir(), "rows.tsv")
	writeTSV(b, tsv, flows)
	ctx := context.Background()
	batch := RecommendedQueueOptions().BatchSize
	if v, err := strconv.Atoi(os.Getenv("PERISCOPE_BENCH_BATCH")); err == nil && v > 0 {
		batch = v
	}
	if v, err := strconv.Atoi(os.Getenv("PERISCOPE_BENCH_BLOCK")); err == nil && v > 0 {
		defer func(n int) { insertBlockRows = n }(insertBlockRows)
		insertBlockRows = v
	}
	var sinkTime, clientTime time.Duration
	round := uint64(0)
	for b.Loop() {
		round++
		// Fresh UUIDs per round so the rows are new rows.
		for i := range flows {
			flows[i].UUID[0] = byte(round)
		}
		start := time.Now()
		for lo := 0; lo < len(flows); lo += batch {
			if err := s.Write(ctx, flows[lo:min(lo+batch, len(flows))]); err != nil {
				b.Fatal(err)
			}
		}
		sinkTime += time.Since(start)

		f, err := os.Open(tsv)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		out, err := srv.Client(ctx, f, "--query", "INSERT INTO periscope.flows ("+columnList()+") FORMAT TSV")
		clientTime += time.Since(start)
		f.Close()
		if err != nil {
			b.Fatalf("clickhouse-client: %v\n%s", err, out)
		}
	}
	n := float64(round * benchRows)
	sinkRate, clientRate := n/sinkTime.Seconds(), n/clientTime.Seconds()
	b.ReportMetric(sinkRate, "sink_rows/s")
	b.ReportMetric(clientRate, "client_rows/s")
	b.ReportMetric(sinkRate/clientRate, "ratio")
	if got := srv.Query("SELECT count() FROM periscope.flows"); got != strconv.FormatUint(2*round*benchRows, 10) {
		b.Fatalf("table has %s rows, want %d", got, 2*round*benchRows)
	}
}

// writeTSV writes flows as TSV rows in flowColumns order, with the values
// the sink sends (columnBuilders), a block at a time.
func writeTSV(b *testing.B, path string, flows []api.Flow) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var cb columnBuilder
	t := &tsvTarget{cells: make([][]string, len(flowColumns))}
	for lo := 0; lo < len(flows); lo += 4096 {
		block := flows[lo:min(lo+4096, len(flows))]
		for j := range t.cells {
			t.cells[j] = t.cells[j][:0]
		}
		if err := cb.appendRows(t, block); err != nil {
			b.Fatal(err)
		}
		for i := range block {
			for j := range t.cells {
				if j > 0 {
					w.WriteByte('\t')
				}
				w.WriteString(t.cells[j][i])
			}
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// tsvTarget is a columnTarget that keeps each column's values as TSV text.
type tsvTarget struct{ cells [][]string }

func (t *tsvTarget) Column(i int) driver.BatchColumn { return tsvColumn{t, i} }

type tsvColumn struct {
	t *tsvTarget
	i int
}

// Append takes a whole column (a slice), AppendRow one row's value.
func (c tsvColumn) Append(v any) error {
	s := reflect.ValueOf(v)
	for k := range s.Len() {
		c.AppendRow(s.Index(k).Interface())
	}
	return nil
}

func (c tsvColumn) AppendRow(v any) error {
	// A clone: FixedString values alias the builder's reused scratch bytes.
	c.t.cells[c.i] = append(c.t.cells[c.i], strings.Clone(tsvValue(v)))
	return nil
}

var tsvEscaper = strings.NewReplacer("\\", `\\`, "\t", `\t`, "\n", `\n`, "\x00", `\0`)
var arrayEscaper = strings.NewReplacer("\\", `\\`, "'", `\'`, "\t", `\t`, "\n", `\n`, "\x00", `\0`)

func tsvValue(v any) string {
	switch v := v.(type) {
	case time.Time:
		return strconv.FormatInt(v.Unix(), 10)
	case string:
		return tsvEscaper.Replace(v)
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = "'" + arrayEscaper.Replace(s) + "'"
		}
		return "[" + strings.Join(parts, ",") + "]" // arrays are read as quoted literals
	case []uint64:
		parts := make([]string, len(v))
		for i, n := range v {
			parts[i] = strconv.FormatUint(n, 10)
		}
		return "[" + strings.Join(parts, ",") + "]"
	default:
		return fmt.Sprint(v)
	}
}
