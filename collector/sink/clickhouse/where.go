package clickhouse

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// whereClause translates the time range and filter to a WHERE condition
// with "?" parameters. exact is false when part of the filter was left to
// Go: the condition then selects a superset.
func whereClause(q flowquery.Query) (where string, args []any, exact bool) {
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
	fconds, fargs, exact := setSQL(q.Filter)
	conds = append(conds, fconds...)
	args = append(args, fargs...)
	if len(conds) == 0 {
		return "1", args, exact
	}
	return strings.Join(conds, " AND "), args, exact
}

// setSQL translates a filter.Set: the OR of its allowed filters, and NOT of
// each denied one. A denied filter SQL cannot say exactly is left out
// whole: subtracting a superset of its rows would lose rows.
func setSQL(s *filter.Set) (conds []string, args []any, exact bool) {
	exact = true
	if allow := s.Allow(); len(allow) > 0 {
		alts := make([]string, 0, len(allow))
		for _, f := range allow {
			c, a, ok := filterSQL(f)
			exact = exact && ok
			alts = append(alts, c)
			args = append(args, a...)
		}
		if len(alts) == 1 {
			conds = append(conds, alts[0])
		} else {
			conds = append(conds, "("+strings.Join(alts, " OR ")+")")
		}
	}
	for _, f := range s.Deny() {
		c, a, ok := filterSQL(f)
		if !ok {
			exact = false
			continue
		}
		conds = append(conds, "NOT "+c)
		args = append(args, a...)
	}
	return conds, args, exact
}

// filterSQL is every term of f ANDed ("1" for none). A term SQL cannot say
// exactly is narrowed (a condition every flow it matches meets) or left
// out, which selects a superset; exact is false then.
func filterSQL(f *filter.Filter) (cond string, args []any, exact bool) {
	exact = true
	var conds []string
	for _, t := range f.Terms() {
		c, a, fit := termSQL(t)
		if fit != sqlExact {
			exact = false
		}
		if fit == sqlNone {
			continue
		}
		conds = append(conds, c)
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return "(1)", args, exact
	}
	return "(" + strings.Join(conds, " AND ") + ")", args, exact
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
	ip, port, identity, namespace, pod, workload, labelKeys, labelValues, names string
}

var sideCols = map[filter.Side]endpointCols{
	filter.SideFrom: {"src_ip", "src_port", "src_identity", "src_namespace", "src_pod", "src_workload", "src_labels_keys", "src_labels_values", "src_names"},
	filter.SideTo:   {"dst_ip", "dst_port", "dst_identity", "dst_namespace", "dst_pod", "dst_workload", "dst_labels_keys", "dst_labels_values", "dst_names"},
}

// sqlFit is how well a condition says a term.
type sqlFit uint8

const (
	sqlNone     sqlFit = iota // no condition: the term is left to filter.Match
	sqlExact                  // the condition selects exactly the flows the term matches
	sqlSuperset               // the condition selects those and others, filter.Match decides
)

// termSQL translates one term: exactly when every value can be said
// (kindSQL), else by the kind's narrowing condition when the term is not
// negated (kindNarrowing), else not at all.
func termSQL(t filter.Term) (cond string, args []any, fit sqlFit) {
	cond, args, ok := exactTermSQL(t)
	switch n, narrows := kindNarrowing[t.Kind]; {
	case ok:
		return cond, args, sqlExact
	case narrows && !t.Negate:
		return "(" + n + ")", nil, sqlSuperset
	}
	return "", nil, sqlNone
}

// exactTermSQL translates one term exactly; ok is false when it cannot.
func exactTermSQL(t filter.Term) (cond string, args []any, ok bool) {
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
			valueSQL, known := kindSQL[t.Kind]
			if !known {
				return "", nil, false
			}
			c, a, ok := valueSQL(v, sideCols[sd])
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

// valueSQL translates one value of a filter kind over the columns of one
// side (c; unsided kinds ignore it); ok is false when SQL cannot say it
// exactly, and then it is matched in Go only.
type valueSQL func(v filter.TermValue, c endpointCols) (cond string, args []any, ok bool)

// kindSQL is the SQL of every filter kind (filter.Kinds): a new kind needs
// an entry here, SQL or notPushedDown (TestEveryKindHasSQL).
var kindSQL = map[string]valueSQL{
	"ip":    func(v filter.TermValue, c endpointCols) (string, []any, bool) { return ipSQL(c.ip, v.Prefix) },
	"label": func(v filter.TermValue, c endpointCols) (string, []any, bool) { return labelSQL(c, v.Selector) },
	"pod": func(v filter.TermValue, c endpointCols) (string, []any, bool) {
		if v.Namespace != "" {
			return c.namespace + " = ? AND startsWith(" + c.pod + ", ?)", []any{v.Namespace, v.Name}, true
		}
		return c.pod + " != '' AND startsWith(" + c.pod + ", ?)", []any{v.Name}, true
	},
	"namespace": func(v filter.TermValue, c endpointCols) (string, []any, bool) {
		return c.namespace + " = ?", []any{v.Name}, true
	},
	"workload": func(v filter.TermValue, c endpointCols) (string, []any, bool) {
		return c.workload + " = ?", []any{v.Name}, true
	},
	"identity": func(v filter.TermValue, c endpointCols) (string, []any, bool) {
		return c.identity + " = ?", []any{v.Number}, true
	},
	"port": func(v filter.TermValue, c endpointCols) (string, []any, bool) {
		return portProtocols + " AND " + c.port + " = ?", []any{v.Number}, true
	},
	"verdict": numberIs("verdict"),
	"protocol": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		if v.Name != "" { // an L7 protocol
			return "l7_protocol = ?", []any{v.Name}, true
		}
		return "protocol != 0 AND (protocol = ? OR protocol = ?)", []any{v.Protocols[0], v.Protocols[1]}, true
	},
	"tcp-flag": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		return fmt.Sprintf("protocol = %d AND bitAnd(tcp_flags, ?) = ?", api.ProtoTCP), []any{v.Number, v.Number}, true
	},
	"type": numberIs("type"),
	"node": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		if v.Glob {
			return "", nil, false // path.Match is not LIKE: leave it to Go
		}
		return "node = ?", []any{v.Name}, true
	},
	"traffic-direction": numberIs("direction"),
	"reply":             numberIs("is_reply"),
	"ip-version":        numberIs("ip_version"),
	"drop-reason": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		return fmt.Sprintf("verdict = %d AND type != %d AND drop_reason = ?", verdictDropped, api.FlowTypeL7), []any{v.Number}, true
	},
	"event-type": eventTypeSQL,
	"uuid": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		return "uuid = unhex(?)", []any{fmt.Sprintf("%X", v.UUID[:])}, true
	},
	"interface": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		var conds []string
		var args []any
		if v.Number != 0 {
			conds, args = append(conds, "iface_index = ?"), append(args, v.Number)
		}
		if v.Name != "" {
			conds, args = append(conds, "iface_name = ?"), append(args, v.Name)
		}
		return strings.Join(conds, " AND "), args, len(conds) > 0
	},
	"dns": func(v filter.TermValue, c endpointCols) (string, []any, bool) {
		if !v.Glob {
			return "has(" + c.names + ", ?)", []any{v.Name}, true
		}
		// Hubble's pattern is RE2 both in Go and in ClickHouse's match.
		return "arrayExists(x -> match(x, ?), " + c.names + ")", []any{filter.FQDNPatternRegexp(v.Name)}, true
	},
	"http-status": httpStatusSQL,
	"http-method": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		// The value is an upper-case token; upper() changes ASCII letters
		// only, as filter's match folds them.
		return httpRecord + " AND upper(http_method) = ?", []any{v.Name}, true
	},
	"http-header": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		return httpRecord + " AND arrayExists((k, v) -> k = ? AND v = ?, http_headers_keys, http_headers_values)",
			[]any{v.Name, v.HeaderValue}, true
	},
	"trace-id": func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		return "trace_id = ?", []any{v.Name}, true
	},
	// Go's regular expressions and ClickHouse's match() differ at the
	// edges (and http-path reads the URL as net/url does): kindNarrowing.
	"http-path": notPushedDown,
	"http-url":  notPushedDown,
	"dns-query": notPushedDown,
}

// kindNarrowing is, for a kind SQL cannot say exactly, a condition every
// flow it matches meets: a term of it that is not negated selects by that,
// and filter.Match decides.
var kindNarrowing = map[string]string{
	"http-path": httpRecord + " AND http_path != ''",
	"http-url":  httpRecord + " AND http_path != ''",
	"dns-query": fmt.Sprintf("l7_protocol = '%s'", api.L7ProtocolDNS),
}

// httpRecord is "the flow carries an HTTP record" (api.L7.Protocol): the
// http_* columns are filled from an L7's HTTP record even when it breaks
// the one-of, and then filter's kinds do not look at it.
var httpRecord = fmt.Sprintf("l7_protocol = '%s'", api.L7ProtocolHTTP)

// httpStatusSQL is filter's http-status over the http_status column (a
// code above 65535 is stored as 65535, which no value matches): a code, or
// the codes of three to five digits whose first digits are the value's.
func httpStatusSQL(v filter.TermValue, _ endpointCols) (string, []any, bool) {
	if !v.NumberPrefix {
		return httpRecord + " AND http_status = ?", []any{v.Number}, true
	}
	digits := 1
	if v.Number >= 10 {
		digits = 2
	}
	var ranges []string
	var args []any
	scale := uint32(1)
	for n := digits; n < 3; n++ {
		scale *= 10
	}
	for n := 3; n <= 5; n++ { // 65535 has five digits
		ranges = append(ranges, "http_status BETWEEN ? AND ?")
		args = append(args, v.Number*scale, (v.Number+1)*scale-1)
		scale *= 10
	}
	return httpRecord + " AND (" + strings.Join(ranges, " OR ") + ")", args, true
}

// notPushedDown is the SQL of a kind whose columns the table lacks: its
// values are matched after reading.
func notPushedDown(filter.TermValue, endpointCols) (string, []any, bool) { return "", nil, false }

// numberIs compares a column with the value's number.
func numberIs(col string) valueSQL {
	return func(v filter.TermValue, _ endpointCols) (string, []any, bool) {
		return col + " = ?", []any{v.Number}, true
	}
}

// eventTypeSQL is filter's event-type: L7 flows are L7 events whatever
// their verdict; other drops are drop events (a drop's sub-type its drop
// reason); other L3/L4 and socket flows trace events;
// L3/L4 flows policy verdict events; L7 flows L7 events. A trace's
// sub-type (api.Flow.TracePoint: the interface, hook and endpoint ids of a
// point) is matched in Go only.
func eventTypeSQL(v filter.TermValue, _ endpointCols) (string, []any, bool) {
	switch {
	case v.HasSubType && v.Number == filter.EventTypeDrop:
		return fmt.Sprintf("verdict = %d AND type != %d AND drop_reason = ?", verdictDropped, api.FlowTypeL7), []any{v.SubType}, true
	case v.HasSubType:
		return "", nil, false
	}
	switch v.Number {
	case filter.EventTypeDrop:
		return fmt.Sprintf("verdict = %d AND type != %d", verdictDropped, api.FlowTypeL7), nil, true
	case filter.EventTypeTrace:
		return fmt.Sprintf("verdict != %d AND type IN (%d, %d)", verdictDropped, api.FlowTypeL3L4, api.FlowTypeSock), nil, true
	case filter.EventTypePolicyVerdict:
		return fmt.Sprintf("type = %d", api.FlowTypeL3L4), nil, true
	case filter.EventTypeL7:
		return fmt.Sprintf("type = %d", api.FlowTypeL7), nil, true
	}
	return "0", nil, true
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
		case filter.LabelIn, filter.LabelNotIn:
			marks := strings.TrimSuffix(strings.Repeat("?, ", len(r.Values)), ", ")
			cond = fmt.Sprintf("arrayExists((k, v) -> %s AND has([%s], v), %s, %s)", keyCond, marks, c.labelKeys, c.labelValues)
			for _, v := range r.Values {
				args = append(args, v)
			}
		default: // > and < compare integers, which SQL would have to parse: Go only
			return "", nil, false
		}
		if r.Op == filter.LabelNotExists || r.Op == filter.LabelNotEquals || r.Op == filter.LabelNotIn {
			cond = "NOT " + cond
		}
		conds = append(conds, cond)
	}
	return strings.Join(conds, " AND "), args, true
}
