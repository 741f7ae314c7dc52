package clickhouse

import (
	"testing"
	"time"

	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/periscope-dev/periscope/api"
)

// blockTarget is a columnTarget of clickhouse-go's own column buffers, as a
// batch holds them, without a server.
type blockTarget struct{ b *proto.Block }

func (t blockTarget) Column(i int) driver.BatchColumn { return blockColumn{t.b.Columns[i]} }

type blockColumn struct{ c chcolumn.Interface }

func (c blockColumn) Append(v any) error    { _, err := c.c.Append(v); return err }
func (c blockColumn) AppendRow(v any) error { return c.c.AppendRow(v) }

// BenchmarkColumnBuilder is the client's cost of building one block of
// insertBlockRows rows into the driver's column buffers: of L3/L4 flows,
// and of L7 records.
func BenchmarkColumnBuilder(b *testing.B) {
	l3l4 := genFlows(41, insertBlockRows, time.Now())
	l7 := make([]api.Flow, 0, insertBlockRows)
	for len(l7) < insertBlockRows {
		l7 = append(l7, l7Flows(time.Now())...)
	}
	for _, bc := range []struct {
		name string
		rows []api.Flow
	}{{"L3L4", l3l4}, {"L7", l7[:insertBlockRows]}} {
		b.Run(bc.name, func(b *testing.B) {
			block := proto.NewBlock()
			for _, c := range flowColumns {
				if err := block.AddColumn(c.name, chcolumn.Type(c.typ)); err != nil {
					b.Fatal(err)
				}
			}
			var cb columnBuilder
			b.ReportAllocs()
			for b.Loop() {
				block.Reset()
				if err := cb.appendRows(blockTarget{block}, bc.rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bc.rows)), "ns/row")
		})
	}
}
