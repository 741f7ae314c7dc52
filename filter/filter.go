// Package filter owns Periscope's flow filters: their chip syntax, the text
// form in which `periscope observe` sends them to the collector and in which
// the UI shows them,
//
//	[!][from:|to:]kind=value
//
// and their matching semantics, which are those of `hubble observe`:
//
//   - chips with the same negation, side and kind form one term, which matches
//     when ANY of its values matches ("--port 80 --port 443");
//   - a flow must pass EVERY term ("--port 80 --protocol tcp");
//   - a negated term ("!kind=value", hubble's --not) rejects a flow that
//     matches ANY of its values;
//   - "from:" tests the source side, "to:" the destination side, and no side
//     tests either side. Kinds without sides reject "from:" and "to:";
//   - the L7 kinds (http-*, dns-query) test the record an L7 flow carries:
//     a flow without one, or with another protocol's, never matches them.
//
// Kinds and their values (the table in kinds.go, which Kinds describes):
//
//	ip                 an address (10.0.0.1) or a CIDR prefix (10.0.0.0/8)
//	port               an L4 port 0-65535 (TCP, UDP, SCTP)
//	protocol           tcp, udp, sctp, icmpv4, icmpv6, or icmp (both ICMPs);
//	                   http, dns, kafka: L7 flows carrying that record
//	label              a Kubernetes label selector, as Hubble's: key=value,
//	                   key==value, key!=value, key, !key, key in (a,b),
//	                   key notin (a,b), key>n, key<n; commas AND requirements;
//	                   a key may name a source (k8s:app) or not (app), which
//	                   matches labels from any source
//	pod                a pod name prefix (frontend), optionally in a namespace
//	                   (default/frontend); "ns/" matches every pod in ns
//	namespace          a namespace name
//	workload           a workload name
//	identity           a numeric security identity
//	verdict            FORWARDED, DROPPED, AUDIT, ERROR, TRACED (any case)
//	type               l3_l4, l7, sock
//	tcp-flag           SYN, ACK, FIN, RST, PSH, URG, ECE, CWR, NS; "SYN,ACK"
//	                   needs both
//	node               a node name; * and ? glob
//	traffic-direction  ingress, egress
//	reply              true, false
//	ip-version         ipv4, ipv6, none
//	drop-reason        a drop reason (POLICY_DENIED); only dropped flows have one
//	event-type         Hubble's event type: drop, trace, policy-verdict, l7, or
//	                   a number
//	uuid               a flow's UUID
//	interface          a name (eth0), an index (:7), or both (eth0:7)
//	http-status        an HTTP response's code (404) or its first one or two
//	                   digits and + (5+, 40+), as Hubble's; requests have none
//	http-method        an HTTP method, in any case (get, GET)
//	http-path          a regular expression the URL's path must match (the
//	                   path as net/url.ParseRequestURI reads it, unescaped)
//	http-url           a regular expression the URL must match
//	http-header        name:value, a header the record has exactly
//	trace-id           a W3C trace ID (32 lower-case hex digits): the trace
//	                   of an HTTP record's request (its traceparent header)
//	dns-query          a regular expression the DNS record's queried name
//	                   ("example.com.") must match
//	dns                a DNS name the flow's endpoints resolved its addresses to
//	                   (source_names, destination_names); * matches any run of
//	                   [-.0-9a-z] (Hubble's --fqdn)
//
// Regular expressions are Go's (RE2, as Hubble's) and match anywhere in
// the text unless anchored (^/api/); like every chip value they lose
// leading and trailing spaces.
//
// A Filter is one AND of terms; a Set is Hubble's GetFlows filter, an OR of
// Filters minus an OR of Filters (whitelist and blacklist). A caller may add
// a Predicate to a Filter (Filter.With): a term it tests itself, such as a
// Hubble CEL expression, which neither chips nor SQL can say.
//
// The package does no I/O; matching does not allocate (a Predicate's own
// test may).
package filter

import (
	"fmt"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// side is the side of a flow a sided chip tests.
type side uint8

const (
	sideEither side = iota
	sideFrom
	sideTo
)

// sidePrefix is how each side is written in a chip.
var sidePrefix = [...]string{sideEither: "", sideFrom: "from:", sideTo: "to:"}

// Filter is a parsed set of chips. The zero value and nil match every flow.
// A Filter is immutable after Parse and safe for concurrent use.
type Filter struct {
	terms []term
	preds []Predicate // terms a caller supplied (With); matched after terms
}

// term is all chips sharing negation, side and kind: a flow matches the term
// when it matches any of the values.
type term struct {
	negate bool
	side   side
	kind   *kind
	values []value
}

// Parse reads chips into a Filter. Blank chips are ignored. An error names
// the chip and what is wrong with it, e.g.
// `filter "to:port=http": port must be a number 0-65535`.
func Parse(chips []string) (*Filter, error) {
	f := &Filter{}
	for _, chip := range chips {
		if strings.TrimSpace(chip) == "" {
			continue
		}
		negate, sd, k, v, err := parseChip(chip)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", chip, err)
		}
		f.add(negate, sd, k, v)
	}
	return f, nil
}

// MustParse is Parse for chips known to be valid, as in tests; it panics on
// an error.
func MustParse(chips ...string) *Filter {
	f, err := Parse(chips)
	if err != nil {
		panic(err)
	}
	return f
}

// parseChip splits "[!][from:|to:]kind=value" and parses the value.
func parseChip(chip string) (negate bool, sd side, k *kind, v value, err error) {
	s := strings.TrimSpace(chip)
	if rest, ok := strings.CutPrefix(s, "!"); ok {
		negate, s = true, strings.TrimSpace(rest)
	}
	if rest, ok := cutPrefixFold(s, "from:"); ok {
		sd, s = sideFrom, rest
	} else if rest, ok := cutPrefixFold(s, "to:"); ok {
		sd, s = sideTo, rest
	}
	name, raw, ok := strings.Cut(s, "=")
	name = strings.ToLower(strings.TrimSpace(name))
	if !ok {
		return false, 0, nil, v, fmt.Errorf("want [!][from:|to:]kind=value, e.g. to:port=8080")
	}
	k = lookupKind(name)
	if k == nil {
		return false, 0, nil, v, fmt.Errorf("unknown kind %q (want one of %s)", name, kindList())
	}
	if sd != sideEither && !k.Sided {
		return false, 0, nil, v, fmt.Errorf("%s has no source or destination side: drop %q", k.Name, sidePrefix[sd])
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return false, 0, nil, v, fmt.Errorf("%s needs a value", k.Name)
	}
	v, err = k.parse(raw)
	if err != nil {
		return false, 0, nil, v, err
	}
	return negate, sd, k, v, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// add puts v into the term for (negate, sd, k), creating it if needed.
func (f *Filter) add(negate bool, sd side, k *kind, v value) {
	for i := range f.terms {
		t := &f.terms[i]
		if t.negate == negate && t.side == sd && t.kind == k {
			t.values = append(t.values, v)
			return
		}
	}
	f.terms = append(f.terms, term{negate: negate, side: sd, kind: k, values: []value{v}})
}

// Match reports whether fl passes every term. A nil or empty Filter matches
// every flow.
func (f *Filter) Match(fl *api.Flow) bool {
	if f == nil {
		return true
	}
	for i := range f.terms {
		t := &f.terms[i]
		if t.matches(fl) == t.negate {
			return false
		}
	}
	return f.preds == nil || f.matchPredicates(fl)
}

// matches reports whether fl matches any of the term's values.
func (t *term) matches(fl *api.Flow) bool {
	for i := range t.values {
		v := &t.values[i]
		switch {
		case !t.kind.Sided:
			if t.kind.match(v, fl, sideEither) {
				return true
			}
		case t.side == sideEither:
			if t.kind.match(v, fl, sideFrom) || t.kind.match(v, fl, sideTo) {
				return true
			}
		default:
			if t.kind.match(v, fl, t.side) {
				return true
			}
		}
	}
	return false
}

// Chips returns the filter in canonical chip form, one chip per value, grouped
// by term in the order the terms first appeared. Parse(f.Chips()) gives an
// equivalent Filter, unless f has Predicates, which chips cannot say and
// leave out.
func (f *Filter) Chips() []string {
	if f == nil {
		return nil
	}
	var chips []string
	for _, t := range f.terms {
		for _, v := range t.values {
			var b strings.Builder
			if t.negate {
				b.WriteByte('!')
			}
			b.WriteString(sidePrefix[t.side])
			b.WriteString(t.kind.Name)
			b.WriteByte('=')
			b.WriteString(v.text)
			chips = append(chips, b.String())
		}
	}
	return chips
}

// String returns the canonical chips joined by spaces, then the
// predicates' names.
func (f *Filter) String() string {
	s := strings.Join(f.Chips(), " ")
	if f.Predicates() {
		if s != "" {
			s += " "
		}
		s += f.predicateNames()
	}
	return s
}

// Empty reports whether the filter has no terms and so matches every flow.
func (f *Filter) Empty() bool {
	return f == nil || len(f.terms) == 0 && len(f.preds) == 0
}
