package filter

import "net/netip"

// Side is the side of a flow a term tests, in the read-only view of a
// Filter's terms.
type Side uint8

// Sides of a term.
const (
	SideEither Side = Side(sideEither) // either endpoint (or a kind without sides)
	SideFrom   Side = Side(sideFrom)   // the source (from:)
	SideTo     Side = Side(sideTo)     // the destination (to:)
)

// LabelOp is a label requirement's operator.
type LabelOp uint8

// Label requirement operators.
const (
	LabelExists    LabelOp = LabelOp(opExists)      // key
	LabelNotExists LabelOp = LabelOp(opNotExists)   // !key
	LabelEquals    LabelOp = LabelOp(opEquals)      // key=value, key==value
	LabelNotEquals LabelOp = LabelOp(opNotEquals)   // key!=value
	LabelIn        LabelOp = LabelOp(opIn)          // key in (v1,v2)
	LabelNotIn     LabelOp = LabelOp(opNotIn)       // key notin (v1,v2)
	LabelGreater   LabelOp = LabelOp(opGreaterThan) // key>n
	LabelLess      LabelOp = LabelOp(opLessThan)    // key<n
)

// LabelRequirement is one comma-separated part of a label selector. A label
// "source:key=value" satisfies it as filter.Match decides, as Kubernetes
// does: Exists, Equals, In, Greater and Less need a label with Key (from
// Source, or from any source when Source is "") and, for Equals, Value; for
// In, one of Values; for Greater and Less, an integer value above or below
// Value's. NotExists needs no label with Key; NotEquals and NotIn none with
// such a value.
type LabelRequirement struct {
	Source string
	Key    string
	Op     LabelOp
	Value  string   // of Equals, NotEquals, Greater and Less
	Values []string // of In and NotIn, sorted
}

// TermValue is one parsed chip value. Which fields are set depends on the
// term's kind:
//
//	ip         Prefix (an address is a full-length prefix; IPv4 is unmapped)
//	label      Selector (every requirement must hold)
//	pod        Namespace ("" for any) and Name (a pod name prefix)
//	namespace, workload, dns  Name
//	node       Name, Glob (Name holds path.Match wildcards)
//	identity, port, verdict, type, traffic-direction, ip-version,
//	drop-reason, event-type  Number (enums in api's numbering); an
//	           event-type with a sub-type has HasSubType and SubType (of
//	           trace an api.TracePoint, of drop an api.DropReason)
//	reply      Number (1 for true, 0 for false)
//	tcp-flag   Number (a mask: every bit must be set)
//	protocol   Protocols (either matches; both equal for one protocol), or
//	           Name for an L7 protocol (api.L7.Protocol's names)
//	uuid       UUID
//	interface  Name ("" for any) and Number (the index, 0 for any)
//	http-status  Number, the code, or with NumberPrefix its first digits
//	http-method  Name (upper case; matched in any ASCII case)
//	http-header  Name and HeaderValue
//	http-path, http-url, dns-query  Text (a regular expression)
//	trace-id   Name (32 lower-case hex digits)
type TermValue struct {
	Text         string // canonical chip value
	Prefix       netip.Prefix
	Number       uint32
	NumberPrefix bool
	Protocols    [2]uint8
	Selector     []LabelRequirement
	Namespace    string
	Name         string
	HeaderValue  string
	Glob         bool
	UUID         [16]byte
	SubType      uint32
	HasSubType   bool
}

// Term is all chips of a Filter sharing negation, side and kind. A flow
// matches the term when it matches any value (on either side for SideEither
// of a sided kind); a flow passes the Filter when every non-negated term
// matches and no negated term does.
type Term struct {
	Negate bool
	Side   Side
	Kind   string // canonical kind name: "ip", "label", "pod", ...
	Sided  bool   // the kind has a source and a destination side
	Values []TermValue
}

// Terms returns a copy of the filter's terms in the order they first
// appeared, then one Term of PredicateKind per Predicate (its Name the
// value's Text), for translating a filter to another language (such as
// SQL), which cannot say a predicate. Changing the result does not change
// f. A nil Filter has no terms.
func (f *Filter) Terms() []Term {
	if f == nil {
		return nil
	}
	out := make([]Term, len(f.terms), len(f.terms)+len(f.preds))
	for i, t := range f.terms {
		vals := make([]TermValue, len(t.values))
		for j, v := range t.values {
			tv := TermValue{
				Text: v.text, Prefix: v.prefix, Number: v.num, NumberPrefix: v.numPrefix, Protocols: v.protos,
				Namespace: v.ns, Name: v.name, HeaderValue: v.hval, Glob: v.glob, UUID: v.uuid,
				SubType: v.sub, HasSubType: v.hasSub,
			}
			if len(v.sel) > 0 {
				tv.Selector = make([]LabelRequirement, len(v.sel))
				for k, r := range v.sel {
					tv.Selector[k] = LabelRequirement{Source: r.source, Key: r.key, Op: LabelOp(r.op), Value: r.value, Values: r.values}
				}
			}
			vals[j] = tv
		}
		out[i] = Term{Negate: t.negate, Side: Side(t.side), Kind: t.kind.Name, Sided: t.kind.Sided, Values: vals}
	}
	for _, p := range f.preds {
		out = append(out, Term{Kind: PredicateKind, Values: []TermValue{{Text: p.Name}}})
	}
	return out
}

// SplitLabel splits a label "source:key=value" as label selectors see it;
// the source and value may be absent. A colon separates the source only
// before the '='.
func SplitLabel(l string) (source, key, value string) { return splitLabel(l) }
