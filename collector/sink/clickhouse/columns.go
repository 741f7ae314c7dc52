package clickhouse

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/periscope-dev/periscope/api"
)

// columnTarget is where a block's columns go: a driver.Batch, or a test's
// TSV writer.
type columnTarget interface {
	Column(int) driver.BatchColumn
}

// columnBuilder appends a block of rows to a batch column by column, in
// flowColumns order. Scalar columns go as whole typed slices (one type
// switch per column rather than per value); arrays row by row as []string,
// which clickhouse-go appends without reflection. The scratch slices are
// reused from column to column and block to block (the driver copies what
// it is given), so a block allocates little beyond the driver's buffers.
type columnBuilder struct {
	times []time.Time
	u8    []uint8
	u16   []uint16
	u32   []uint32
	u64   []uint64
	i32   []int32
	i64   []int64
	str   []string
	bytes []byte   // backing of one column's FixedString(16) values
	arr   []string // one row's array
	// arrU64 is one row's array of numbers; refs the policy ref strings.
	arrU64 []uint64
	refs   map[api.PolicyRef]string
}

// appendRows appends rows to t as one block of every column.
func (c *columnBuilder) appendRows(t columnTarget, rows []api.Flow) error {
	for i, build := range columnBuilders {
		if err := build(c, t.Column(i), rows); err != nil {
			return fmt.Errorf("append column %s: %w", flowColumns[i].name, err)
		}
	}
	return nil
}

// buildFunc appends rows' values of one column to col.
type buildFunc func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error

// columnBuilders build each flows column, in flowColumns order.
var columnBuilders = slices.Concat(coreBuilders, l7Builders, policyRefBuilders, namesBuilders, pointBuilders, traceBuilders)

// traceBuilders build traceColumns: an L7 record's trace ID.
var traceBuilders = []buildFunc{
	scalar(strs, func(f *api.Flow) string { return l7Of(f).TraceID }),
}

// namesBuilders build the DNS names columns (namesColumns).
var namesBuilders = []buildFunc{
	arrayOf(func(dst []string, f *api.Flow) []string { return append(dst, f.SourceNames...) }),
	arrayOf(func(dst []string, f *api.Flow) []string { return append(dst, f.DestinationNames...) }),
}

// coreBuilders build the columns before the L7 ones.
var coreBuilders = []buildFunc{
	func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error {
		c.times = c.times[:0]
		for k := range rows {
			c.times = append(c.times, time.Unix(rows[k].Time.Unix(), 0))
		}
		return col.Append(c.times)
	},
	scalar(u32s, func(f *api.Flow) uint32 { return uint32(f.Time.Nanosecond()) }),
	fixed16(func(f *api.Flow) [16]byte { return f.UUID }),
	scalar(strs, func(f *api.Flow) string { return f.NodeName }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.Event) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.Type) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.Verdict) }),
	scalar(u16s, func(f *api.Flow) uint16 { return uint16(f.DropReason) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.TrafficDirection) }),
	scalar(u8s, func(f *api.Flow) uint8 { return boolByte(f.IsReply) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.InitiatorHook) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.IP.Version) }),
	fixed16(func(f *api.Flow) [16]byte { return ip16(f.IP.Source) }),
	fixed16(func(f *api.Flow) [16]byte { return ip16(f.IP.Destination) }),
	scalar(u8s, func(f *api.Flow) uint8 { return f.L4.Protocol }),
	scalar(u16s, func(f *api.Flow) uint16 { return f.L4.SourcePort }),
	scalar(u16s, func(f *api.Flow) uint16 { return f.L4.DestinationPort }),
	scalar(u8s, func(f *api.Flow) uint8 { return f.L4.ICMPType }),
	scalar(u8s, func(f *api.Flow) uint8 { return f.L4.ICMPCode }),
	scalar(u16s, func(f *api.Flow) uint16 { return uint16(f.L4.TCPFlags) }),
	// Source endpoint.
	scalar(u32s, func(f *api.Flow) uint32 { return f.Source.ID }),
	scalar(u32s, func(f *api.Flow) uint32 { return f.Source.Identity }),
	scalar(strs, func(f *api.Flow) string { return f.Source.Namespace }),
	scalar(strs, func(f *api.Flow) string { return f.Source.PodName }),
	scalar(strs, func(f *api.Flow) string { return f.Source.Workload }),
	labelKeys(func(f *api.Flow) []string { return f.Source.Labels }),
	labelValues(func(f *api.Flow) []string { return f.Source.Labels }),
	// Destination endpoint.
	scalar(u32s, func(f *api.Flow) uint32 { return f.Destination.ID }),
	scalar(u32s, func(f *api.Flow) uint32 { return f.Destination.Identity }),
	scalar(strs, func(f *api.Flow) string { return f.Destination.Namespace }),
	scalar(strs, func(f *api.Flow) string { return f.Destination.PodName }),
	scalar(strs, func(f *api.Flow) string { return f.Destination.Workload }),
	labelKeys(func(f *api.Flow) []string { return f.Destination.Labels }),
	labelValues(func(f *api.Flow) []string { return f.Destination.Labels }),
	scalar(u32s, func(f *api.Flow) uint32 { return f.Interface.Index }),
	scalar(strs, func(f *api.Flow) string { return f.Interface.Name }),
	scalar(i64s, func(f *api.Flow) int64 { return unixNanos(f.StartTime) }),
	scalar(i64s, func(f *api.Flow) int64 { return unixNanos(f.EndTime) }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Counters.PacketsForward }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Counters.BytesForward }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Counters.PacketsReply }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Counters.BytesReply }),
	scalar(u32s, func(f *api.Flow) uint32 { return f.Process.PID }),
	scalar(strs, func(f *api.Flow) string { return f.Process.Comm }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Process.CgroupID }),
	policyRefs(func(f *api.Flow) []api.PolicyRef { return f.IngressAllowedBy }),
	policyRefs(func(f *api.Flow) []api.PolicyRef { return f.EgressAllowedBy }),
	policyRefs(func(f *api.Flow) []api.PolicyRef { return f.IngressDeniedBy }),
	policyRefs(func(f *api.Flow) []api.PolicyRef { return f.EgressDeniedBy }),
}

// policyRefBuilders build policyRefColumns: the deciding policies' kinds and
// revisions, item by item beside the *_by columns.
var policyRefBuilders = []buildFunc{
	policyKinds(func(f *api.Flow) []api.PolicyRef { return f.IngressAllowedBy }),
	policyKinds(func(f *api.Flow) []api.PolicyRef { return f.EgressAllowedBy }),
	policyKinds(func(f *api.Flow) []api.PolicyRef { return f.IngressDeniedBy }),
	policyKinds(func(f *api.Flow) []api.PolicyRef { return f.EgressDeniedBy }),
	policyRevisions(func(f *api.Flow) []api.PolicyRef { return f.IngressAllowedBy }),
	policyRevisions(func(f *api.Flow) []api.PolicyRef { return f.EgressAllowedBy }),
	policyRevisions(func(f *api.Flow) []api.PolicyRef { return f.IngressDeniedBy }),
	policyRevisions(func(f *api.Flow) []api.PolicyRef { return f.EgressDeniedBy }),
}

// pointBuilders build pointColumns: the second observation point and the
// responder's process.
var pointBuilders = []buildFunc{
	scalar(u32s, func(f *api.Flow) uint32 { return f.Other.Interface.Index }),
	scalar(strs, func(f *api.Flow) string { return f.Other.Interface.Name }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.Other.InitiatorHook) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.Other.TrafficDirection) }),
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(f.Other.Verdict) }),
	scalar(u16s, func(f *api.Flow) uint16 { return uint16(f.Other.DropReason) }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Other.Counters.PacketsForward }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Other.Counters.BytesForward }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Other.Counters.PacketsReply }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.Other.Counters.BytesReply }),
	scalar(u32s, func(f *api.Flow) uint32 { return f.DestinationProcess.PID }),
	scalar(strs, func(f *api.Flow) string { return f.DestinationProcess.Comm }),
	scalar(u64s, func(f *api.Flow) uint64 { return f.DestinationProcess.CgroupID }),
}

func init() {
	if len(columnBuilders) != len(flowColumns) {
		panic(fmt.Sprintf("clickhouse: %d column builders for %d columns", len(columnBuilders), len(flowColumns)))
	}
}

// The scratch slice of each scalar type.
func u8s(c *columnBuilder) *[]uint8   { return &c.u8 }
func u16s(c *columnBuilder) *[]uint16 { return &c.u16 }
func u32s(c *columnBuilder) *[]uint32 { return &c.u32 }
func i32s(c *columnBuilder) *[]int32  { return &c.i32 }
func u64s(c *columnBuilder) *[]uint64 { return &c.u64 }
func i64s(c *columnBuilder) *[]int64  { return &c.i64 }
func strs(c *columnBuilder) *[]string { return &c.str }

// scalar builds a column of get's values in the scratch slice buf picks.
func scalar[T any](buf func(*columnBuilder) *[]T, get func(*api.Flow) T) buildFunc {
	return func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error {
		s := (*buf(c))[:0]
		for k := range rows {
			s = append(s, get(&rows[k]))
		}
		*buf(c) = s
		return col.Append(s)
	}
}

// fixed16 builds a FixedString(16) column: the values are strings sliced
// from one byte slice, valid until the next column reuses it.
func fixed16(get func(*api.Flow) [16]byte) buildFunc {
	return func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error {
		c.bytes = c.bytes[:0]
		for k := range rows {
			b := get(&rows[k])
			c.bytes = append(c.bytes, b[:]...)
		}
		c.str = c.str[:0]
		for k := range rows {
			c.str = append(c.str, unsafe.String(&c.bytes[16*k], 16))
		}
		return col.Append(c.str)
	}
}

// array builds an Array(String) column, one row at a time; fill appends a
// row's elements to the scratch slice it is given and returns it. An empty
// row goes as a nil slice, which boxes without allocating.
func arrayOf(fill func(dst []string, f *api.Flow) []string) buildFunc {
	return func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error {
		for k := range rows {
			c.arr = fill(c.arr[:0], &rows[k])
			row := c.arr
			if len(row) == 0 {
				row = nil
			}
			if err := col.AppendRow(row); err != nil {
				return err
			}
		}
		return nil
	}
}

// policyRefs writes policies as "namespace/name" (as before kinds and
// revisions were stored); the builder keeps each ref's string, so a row
// allocates none.
func policyRefs(get func(*api.Flow) []api.PolicyRef) buildFunc {
	return func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error {
		if c.refs == nil || len(c.refs) > maxRefStrings {
			c.refs = map[api.PolicyRef]string{}
		}
		for k := range rows {
			c.arr = c.arr[:0]
			for _, p := range get(&rows[k]) {
				ref, ok := c.refs[p]
				if !ok {
					ref = p.Ref()
					c.refs[p] = ref
				}
				c.arr = append(c.arr, ref)
			}
			if err := col.AppendRow(c.arr); err != nil {
				return err
			}
		}
		return nil
	}
}

// maxRefStrings bounds the builder's cache of policy ref strings.
const maxRefStrings = 4096

func policyKinds(get func(*api.Flow) []api.PolicyRef) buildFunc {
	return arrayOf(func(dst []string, f *api.Flow) []string {
		for _, p := range get(f) {
			dst = append(dst, p.Kind)
		}
		return dst
	})
}

func policyRevisions(get func(*api.Flow) []api.PolicyRef) buildFunc {
	return func(c *columnBuilder, col driver.BatchColumn, rows []api.Flow) error {
		for k := range rows {
			c.arrU64 = c.arrU64[:0]
			for _, p := range get(&rows[k]) {
				c.arrU64 = append(c.arrU64, p.Revision)
			}
			if err := col.AppendRow(c.arrU64); err != nil {
				return err
			}
		}
		return nil
	}
}

// labelKeys and labelValues split "source:key=value" labels into the keys
// ("source:key", the text before '=') and values columns. A label without
// '=' is stored with an empty value and reads back without '=' (filters
// treat both alike).
func labelKeys(get func(*api.Flow) []string) buildFunc {
	return arrayOf(func(dst []string, f *api.Flow) []string {
		for _, l := range get(f) {
			k, _, _ := strings.Cut(l, "=")
			dst = append(dst, k)
		}
		return dst
	})
}

func labelValues(get func(*api.Flow) []string) buildFunc {
	return arrayOf(func(dst []string, f *api.Flow) []string {
		for _, l := range get(f) {
			_, v, _ := strings.Cut(l, "=")
			dst = append(dst, v)
		}
		return dst
	})
}

// ip16 is an address as FixedString(16) bytes: IPv6, IPv4 mapped; 16 zero
// bytes for no address.
func ip16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}
