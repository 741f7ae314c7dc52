package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/filter"
)

// HistoryQuery selects stored flows. Results come oldest first, like the
// collector's ring.
type HistoryQuery struct {
	// Filter selects flows with filter.Match's semantics; nil matches all.
	Filter *filter.Filter
	// Since and Until bound Flow.Time, inclusively; zero means unbounded.
	Since, Until time.Time
	// First and Last keep only the first or last N matching flows; with both
	// zero every matching flow is returned (bound the time range then). Set
	// at most one.
	First, Last int
}

// queryPage is how many rows a query reads per round when part of its
// filter is applied in Go.
const queryPage = 10000

// Query returns the stored flows that match q. The filter is translated to
// SQL with every value bound as a parameter; a term SQL cannot express
// exactly (a node glob) is left out of the SQL, which then selects a
// superset, and filter.Match is applied to every row read in any case.
func (s *Store) Query(ctx context.Context, q HistoryQuery) ([]api.Flow, error) {
	if q.First > 0 && q.Last > 0 {
		return nil, fmt.Errorf("clickhouse: query: set First or Last, not both")
	}
	if q.First < 0 || q.Last < 0 {
		return nil, fmt.Errorf("clickhouse: query: negative First or Last")
	}
	where, args, exact := whereClause(q)
	order := "ASC"
	limit := q.First
	if q.Last > 0 {
		order, limit = "DESC", q.Last
	}
	base := fmt.Sprintf("SELECT %s FROM `%s`.%s WHERE %s ORDER BY time %s, time_ns %s, uuid %s",
		columnList(), s.db, tableFlows, where, order, order, order)

	var out []api.Flow
	if exact && limit > 0 {
		if err := s.scan(ctx, base+" LIMIT ?", append(args, limit), q.Filter, &out); err != nil {
			return nil, err
		}
	} else if exact {
		if err := s.scan(ctx, base, args, q.Filter, &out); err != nil {
			return nil, err
		}
	} else {
		// Part of the filter runs in Go: page until enough rows match.
		for offset := 0; ; offset += queryPage {
			n, err := s.scanCount(ctx, base+" LIMIT ? OFFSET ?", append(slices.Clone(args), queryPage, offset), q.Filter, &out)
			if err != nil {
				return nil, err
			}
			if n < queryPage || limit > 0 && len(out) >= limit {
				break
			}
		}
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
	}
	if q.Last > 0 {
		slices.Reverse(out)
	}
	return out, nil
}

func (s *Store) scan(ctx context.Context, query string, args []any, f *filter.Filter, out *[]api.Flow) error {
	_, err := s.scanCount(ctx, query, args, f, out)
	return err
}

// scanCount appends the rows that pass f to out and returns how many rows
// it read.
func (s *Store) scanCount(ctx context.Context, query string, args []any, f *filter.Filter, out *[]api.Flow) (int, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("clickhouse: query flows: %w", err)
	}
	defer rows.Close()
	var d rowDecoder
	d.init()
	n := 0
	for rows.Next() {
		if err := rows.Scan(d.ptrs...); err != nil {
			return n, fmt.Errorf("clickhouse: read flow: %w", err)
		}
		n++
		fl := d.flow()
		if f.Match(&fl) { // the safety net: SQL never decides alone
			*out = append(*out, fl)
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("clickhouse: read flows: %w", err)
	}
	return n, nil
}

// whereClause translates the time range and filter to a WHERE condition
// with "?" parameters. exact is false when some term was left to Go.
func whereClause(q HistoryQuery) (where string, args []any, exact bool) {
	var conds []string
	if !q.Since.IsZero() {
		sec, ns := splitTime(q.Since)
		conds = append(conds, "(time > toDateTime(?) OR time = toDateTime(?) AND time_ns >= ?)")
		args = append(args, sec, sec, ns)
	}
	if !q.Until.IsZero() {
		sec, ns := splitTime(q.Until)
		conds = append(conds, "(time < toDateTime(?) OR time = toDateTime(?) AND time_ns <= ?)")
		args = append(args, sec, sec, ns)
	}
	exact = true
	for _, t := range q.Filter.Terms() {
		c, a, ok := termSQL(t)
		if !ok {
			exact = false
			continue
		}
		conds = append(conds, c)
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return "1", args, exact
	}
	return strings.Join(conds, " AND "), args, exact
}

// splitTime is t as DateTime seconds (clamped to DateTime's range) and
// nanoseconds.
func splitTime(t time.Time) (uint32, uint32) {
	sec := t.Unix()
	switch {
	case sec < 0:
		return 0, 0
	case sec > 1<<32-1:
		return 1<<32 - 1, 999999999
	}
	return uint32(sec), uint32(t.Nanosecond())
}

// endpointCols are the columns of one side: the allow-list filter SQL takes
// identifiers from.
type endpointCols struct {
	ip, port, identity, namespace, pod, workload, labelKeys, labelValues string
}

var sideCols = map[filter.Side]endpointCols{
	filter.SideFrom: {"src_ip", "src_port", "src_identity", "src_namespace", "src_pod", "src_workload", "src_labels_keys", "src_labels_values"},
	filter.SideTo:   {"dst_ip", "dst_port", "dst_identity", "dst_namespace", "dst_pod", "dst_workload", "dst_labels_keys", "dst_labels_values"},
}

// termSQL translates one term; ok is false when the term cannot be
// expressed exactly (then it is left to filter.Match).
func termSQL(t filter.Term) (cond string, args []any, ok bool) {
	var alts []string
	for _, v := range t.Values {
		var sides []filter.Side
		switch {
		case !t.Sided:
			sides = []filter.Side{filter.SideEither}
		case t.Side == filter.SideEither:
			sides = []filter.Side{filter.SideFrom, filter.SideTo}
		default:
			sides = []filter.Side{t.Side}
		}
		for _, sd := range sides {
			c, a, ok := valueSQL(t.Kind, v, sideCols[sd])
			if !ok {
				return "", nil, false
			}
			alts = append(alts, "("+c+")")
			args = append(args, a...)
		}
	}
	cond = "(" + strings.Join(alts, " OR ") + ")"
	if t.Negate {
		cond = "NOT " + cond
	}
	return cond, args, true
}

// Protocols that have ports, as filter's port kind sees them.
var portProtocols = fmt.Sprintf("protocol IN (%d, %d, %d)", api.ProtoTCP, api.ProtoUDP, api.ProtoSCTP)

func valueSQL(kind string, v filter.TermValue, c endpointCols) (string, []any, bool) {
	switch kind {
	case "ip":
		return ipSQL(c.ip, v.Prefix)
	case "label":
		return labelSQL(c, v.Selector)
	case "pod":
		if v.Namespace != "" {
			return c.namespace + " = ? AND startsWith(" + c.pod + ", ?)", []any{v.Namespace, v.Name}, true
		}
		return c.pod + " != '' AND startsWith(" + c.pod + ", ?)", []any{v.Name}, true
	case "namespace":
		return c.namespace + " = ?", []any{v.Name}, true
	case "workload":
		return c.workload + " = ?", []any{v.Name}, true
	case "identity":
		return c.identity + " = ?", []any{v.Number}, true
	case "port":
		return portProtocols + " AND " + c.port + " = ?", []any{v.Number}, true
	case "verdict":
		return "verdict = ?", []any{v.Number}, true
	case "protocol":
		return "protocol != 0 AND (protocol = ? OR protocol = ?)", []any{v.Protocols[0], v.Protocols[1]}, true
	case "tcp-flag":
		return fmt.Sprintf("protocol = %d AND bitAnd(tcp_flags, ?) = ?", api.ProtoTCP), []any{v.Number, v.Number}, true
	case "type":
		return "type = ?", []any{v.Number}, true
	case "node":
		if v.Glob {
			return "", nil, false // path.Match is not LIKE: leave it to Go
		}
		return "node = ?", []any{v.Name}, true
	case "dns":
		return "0", nil, true // reserved: matches no flow
	}
	return "", nil, false
}

var (
	zeroIP   = make([]byte, 16)
	mappedV4 = netip.MustParsePrefix("::ffff:0.0.0.0/96")
)

// ipSQL is "address in prefix" over the FixedString(16) column: a byte range.
// IPv4 addresses are stored mapped, so an IPv4 prefix is a range of mapped
// addresses; an IPv6 prefix excludes the mapped range (filter.Match never
// matches an IPv4 flow with an IPv6 prefix) and the empty address.
func ipSQL(col string, p netip.Prefix) (string, []any, bool) {
	if !p.IsValid() {
		return "", nil, false
	}
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	lo, hi := byteRange(netip.AddrFrom16(p.Addr().As16()), bits)
	cond := fmt.Sprintf("%s >= unhex(?) AND %s <= unhex(?)", col, col)
	args := []any{lo, hi}
	if p.Addr().Is6() {
		mlo, mhi := byteRange(mappedV4.Addr(), 96)
		if mlo >= lo && mhi <= hi {
			cond += fmt.Sprintf(" AND NOT (%s >= unhex(?) AND %s <= unhex(?))", col, col)
			args = append(args, mlo, mhi)
		}
		if lo == fmt.Sprintf("%X", zeroIP) {
			cond += fmt.Sprintf(" AND %s != unhex(?)", col)
			args = append(args, lo)
		}
	}
	return cond, args, true
}

// byteRange is the first and last address of a/bits, as upper-case hex.
func byteRange(a netip.Addr, bits int) (string, string) {
	lo := a.As16()
	hi := lo
	for i := range 16 {
		for b := range 8 {
			if i*8+b >= bits {
				lo[i] &^= 0x80 >> b
				hi[i] |= 0x80 >> b
			}
		}
	}
	return fmt.Sprintf("%X", lo[:]), fmt.Sprintf("%X", hi[:])
}

// labelSQL is every requirement of a selector, over the keys ("source:key")
// and values arrays.
func labelSQL(c endpointCols, sel []filter.LabelRequirement) (string, []any, bool) {
	if len(sel) == 0 {
		return "", nil, false
	}
	var conds []string
	var args []any
	for _, r := range sel {
		// keyCond tests the lambda's k: "source:key" exactly, or for any
		// source the text after the first colon (all of k without one).
		var keyCond string
		if r.Source != "" {
			keyCond = "k = ?"
			args = append(args, r.Source+":"+r.Key)
		} else {
			keyCond = "substring(k, position(k, ':') + 1) = ?"
			args = append(args, r.Key)
		}
		var cond string
		switch r.Op {
		case filter.LabelExists, filter.LabelNotExists:
			cond = fmt.Sprintf("arrayExists(k -> %s, %s)", keyCond, c.labelKeys)
		case filter.LabelEquals, filter.LabelNotEquals:
			cond = fmt.Sprintf("arrayExists((k, v) -> %s AND v = ?, %s, %s)", keyCond, c.labelKeys, c.labelValues)
			args = append(args, r.Value)
		default:
			return "", nil, false
		}
		if r.Op == filter.LabelNotExists || r.Op == filter.LabelNotEquals {
			cond = "NOT " + cond
		}
		conds = append(conds, cond)
	}
	return strings.Join(conds, " AND "), args, true
}

// rowDecoder scans one row of flowColumns and rebuilds the flow.
type rowDecoder struct {
	ptrs []any

	t                                time.Time
	tns                              uint32
	uuid, node                       string
	event, typ, verdict              uint8
	dropReason                       uint16
	direction, isReply, hook, ipVer  uint8
	srcIP, dstIP                     string
	proto                            uint8
	sport, dport                     uint16
	icmpType, icmpCode               uint8
	tcpFlags                         uint16
	src, dst                         epRow
	ifIndex                          uint32
	ifName                           string
	startNs, endNs                   int64
	pf, bf, pr, br                   uint64
	pid                              uint32
	comm                             string
	cgroup                           uint64
	inAllow, egAllow, inDeny, egDeny []string
	l7                               l7Row
}

type epRow struct {
	id, identity      uint32
	ns, pod, workload string
	keys, values      []string
}

func (d *rowDecoder) init() {
	d.ptrs = []any{
		&d.t, &d.tns, &d.uuid, &d.node,
		&d.event, &d.typ, &d.verdict, &d.dropReason,
		&d.direction, &d.isReply, &d.hook, &d.ipVer,
		&d.srcIP, &d.dstIP,
		&d.proto, &d.sport, &d.dport, &d.icmpType, &d.icmpCode, &d.tcpFlags,
		&d.src.id, &d.src.identity, &d.src.ns, &d.src.pod, &d.src.workload, &d.src.keys, &d.src.values,
		&d.dst.id, &d.dst.identity, &d.dst.ns, &d.dst.pod, &d.dst.workload, &d.dst.keys, &d.dst.values,
		&d.ifIndex, &d.ifName, &d.startNs, &d.endNs,
		&d.pf, &d.bf, &d.pr, &d.br,
		&d.pid, &d.comm, &d.cgroup,
		&d.inAllow, &d.egAllow, &d.inDeny, &d.egDeny,
	}
	d.ptrs = append(d.ptrs, d.l7.ptrs()...)
	if len(d.ptrs) != len(flowColumns) {
		panic(fmt.Sprintf("clickhouse: decoder has %d fields for %d columns", len(d.ptrs), len(flowColumns)))
	}
}

func (d *rowDecoder) flow() api.Flow {
	f := api.Flow{
		Time:             time.Unix(d.t.Unix(), int64(d.tns)).UTC(),
		NodeName:         d.node,
		Event:            api.EventKind(d.event),
		Type:             api.FlowType(d.typ),
		Verdict:          api.Verdict(d.verdict),
		DropReason:       api.DropReason(d.dropReason),
		TrafficDirection: api.TrafficDirection(d.direction),
		IsReply:          d.isReply != 0,
		InitiatorHook:    api.TrafficDirection(d.hook),
		IP:               api.IP{Source: addr16(d.srcIP), Destination: addr16(d.dstIP), Version: api.IPVersion(d.ipVer)},
		L4: api.L4{Protocol: d.proto, SourcePort: d.sport, DestinationPort: d.dport,
			ICMPType: d.icmpType, ICMPCode: d.icmpCode, TCPFlags: api.TCPFlags(d.tcpFlags)},
		Source:      d.src.endpoint(),
		Destination: d.dst.endpoint(),
		Interface:   api.Interface{Index: d.ifIndex, Name: d.ifName},
		StartTime:   fromNanos(d.startNs),
		EndTime:     fromNanos(d.endNs),
		Counters:    api.Counters{PacketsForward: d.pf, BytesForward: d.bf, PacketsReply: d.pr, BytesReply: d.br},
		Process:     api.Process{PID: d.pid, Comm: d.comm, CgroupID: d.cgroup},

		IngressAllowedBy: nilIfEmpty(d.inAllow),
		EgressAllowedBy:  nilIfEmpty(d.egAllow),
		IngressDeniedBy:  nilIfEmpty(d.inDeny),
		EgressDeniedBy:   nilIfEmpty(d.egDeny),
	}
	copy(f.UUID[:], d.uuid)
	f.L7 = d.l7.record()
	return f
}

func (e *epRow) endpoint() api.Endpoint {
	ep := api.Endpoint{ID: e.id, Identity: e.identity, Namespace: e.ns, PodName: e.pod, Workload: e.workload}
	if len(e.keys) > 0 {
		ep.Labels = make([]string, len(e.keys))
		for i, k := range e.keys {
			if i < len(e.values) && e.values[i] != "" {
				k += "=" + e.values[i]
			}
			ep.Labels[i] = k
		}
	}
	return ep
}

// addr16 reads a FixedString(16) address: mapped IPv4 comes back as IPv4,
// zero bytes as no address.
func addr16(b string) netip.Addr {
	if len(b) != 16 || b == string(zeroIP) {
		return netip.Addr{}
	}
	var a [16]byte
	copy(a[:], b)
	return netip.AddrFrom16(a).Unmap()
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
