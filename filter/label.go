package filter

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// op is a label requirement's operator.
type op uint8

const (
	opExists op = iota
	opNotExists
	opEquals
	opNotEquals
	opIn
	opNotIn
	opGreaterThan
	opLessThan
)

// requirement is one comma-separated part of a label selector.
type requirement struct {
	source string // label source such as "k8s"; "" matches any source
	key    string
	op     op
	value  string   // of =, ==, != (may be empty), > and <
	values []string // of in and notin, sorted and distinct
	number int64    // of > and <
}

// selector is a label selector: every requirement must hold.
type selector []requirement

// parseSelector reads a Kubernetes label selector, as Hubble's label
// filters do: comma-separated requirements key, !key, key=value,
// key==value, key!=value, key in (v1,v2), key notin (v1,v2), key>n and
// key<n (n an integer). A key may carry a Cilium source ("k8s:app"; "any:"
// is any source).
func parseSelector(raw string) (selector, error) {
	toks := lexSelector(raw)
	var sel selector
	var err error
	for len(toks) > 0 {
		var r requirement
		if r, toks, err = parseRequirement(toks); err != nil {
			return nil, fmt.Errorf("label selector %q: %w", raw, err)
		}
		sel = append(sel, r)
		if len(toks) == 0 {
			break
		}
		if toks[0].text != "," || toks[0].ident {
			return nil, fmt.Errorf("label selector %q: want ',' before %q", raw, toks[0].text)
		}
		if toks = toks[1:]; len(toks) == 0 {
			return nil, fmt.Errorf("label selector %q: a requirement must follow the last ','", raw)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("label selector is empty")
	}
	return sel, nil
}

// token is one word (ident) or operator of a selector.
type token struct {
	text  string
	ident bool
}

// selectorOps are the selector's operators, longest first.
var selectorOps = []string{"!=", "==", "=", "!", "(", ")", ",", "<", ">"}

// lexSelector splits a selector into words and operators; spaces only
// separate.
func lexSelector(raw string) []token {
	var toks []token
	for i := 0; i < len(raw); {
		c := raw[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		if op := selectorOp(raw[i:]); op != "" {
			toks = append(toks, token{text: op})
			i += len(op)
			continue
		}
		j := i
		for j < len(raw) && raw[j] != ' ' && raw[j] != '\t' && selectorOp(raw[j:]) == "" {
			j++
		}
		toks = append(toks, token{text: raw[i:j], ident: true})
		i = j
	}
	return toks
}

func selectorOp(s string) string {
	for _, op := range selectorOps {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	return ""
}

// parseRequirement reads one requirement from toks and returns the rest.
func parseRequirement(toks []token) (requirement, []token, error) {
	var r requirement
	if toks[0].text == "!" && !toks[0].ident {
		if len(toks) < 2 || !toks[1].ident {
			return r, nil, fmt.Errorf("want a key after '!'")
		}
		r.op = opNotExists
		if err := r.setKey(toks[1].text); err != nil {
			return r, nil, err
		}
		return r, toks[2:], nil
	}
	if !toks[0].ident {
		if toks[0].text == "," {
			return r, nil, fmt.Errorf("an empty requirement")
		}
		return r, nil, fmt.Errorf("want a key, got %q", toks[0].text)
	}
	if err := r.setKey(toks[0].text); err != nil {
		return r, nil, err
	}
	toks = toks[1:]
	if len(toks) == 0 || toks[0].text == "," && !toks[0].ident {
		r.op = opExists
		return r, toks, nil
	}
	switch t := toks[0]; {
	case t.ident && (t.text == "in" || t.text == "notin"):
		r.op = opIn
		if t.text == "notin" {
			r.op = opNotIn
		}
		return r.parseValues(toks[1:])
	case !t.ident && (t.text == "=" || t.text == "==" || t.text == "!="):
		r.op = opEquals
		if t.text == "!=" {
			r.op = opNotEquals
		}
		toks = toks[1:]
		if len(toks) > 0 && toks[0].ident { // an empty value is allowed, as in Kubernetes
			r.value, toks = toks[0].text, toks[1:]
		}
		return r, toks, nil
	case !t.ident && (t.text == ">" || t.text == "<"):
		r.op = opGreaterThan
		if t.text == "<" {
			r.op = opLessThan
		}
		if len(toks) < 2 || !toks[1].ident {
			return r, nil, fmt.Errorf("want an integer after %q", t.text)
		}
		n, err := strconv.ParseInt(toks[1].text, 10, 64)
		if err != nil {
			return r, nil, fmt.Errorf("%s%s%s: the value of > and < must be an integer", r.key, t.text, toks[1].text)
		}
		r.value, r.number = toks[1].text, n
		return r, toks[2:], nil
	}
	return r, nil, fmt.Errorf("after key %q want =, ==, !=, in, notin, > or <, got %q", r.key, toks[0].text)
}

// setKey sets the key and its source ("any" is any source).
func (r *requirement) setKey(key string) error {
	if src, k, ok := strings.Cut(key, ":"); ok {
		if src == "" {
			return fmt.Errorf("key %q: empty source before ':'", key)
		}
		r.source, key = src, k
		if r.source == "any" {
			r.source = ""
		}
	}
	if key == "" {
		return fmt.Errorf("empty key")
	}
	if strings.Contains(key, ":") {
		return fmt.Errorf("key %q: one source only (source:key)", key)
	}
	r.key = key
	return nil
}

// parseValues reads "(v1, v2, ...)" of in or notin.
func (r requirement) parseValues(toks []token) (requirement, []token, error) {
	if len(toks) == 0 || toks[0].ident || toks[0].text != "(" {
		return r, nil, fmt.Errorf("want '(' after %s", map[op]string{opIn: "in", opNotIn: "notin"}[r.op])
	}
	toks = toks[1:]
	var vals []string
	for expectValue := true; ; {
		if len(toks) == 0 {
			return r, nil, fmt.Errorf("the values of %q lack their ')'", r.key)
		}
		t := toks[0]
		toks = toks[1:]
		switch {
		case t.ident && expectValue:
			vals, expectValue = append(vals, t.text), false
		case !t.ident && t.text == ",":
			if expectValue { // an empty value, as in Kubernetes
				vals = append(vals, "")
			}
			expectValue = true
		case !t.ident && t.text == ")":
			if expectValue && len(vals) > 0 {
				vals = append(vals, "")
			}
			if len(vals) == 0 {
				return r, nil, fmt.Errorf("the values of %q are empty", r.key)
			}
			slices.Sort(vals)
			r.values = slices.Compact(vals)
			return r, toks, nil
		default:
			return r, nil, fmt.Errorf("unexpected %q in the values of %q", t.text, r.key)
		}
	}
}

// String returns the selector's canonical text.
func (s selector) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.op == opNotExists {
			b.WriteByte('!')
		}
		if r.source != "" {
			b.WriteString(r.source)
			b.WriteByte(':')
		}
		b.WriteString(r.key)
		switch r.op {
		case opEquals:
			b.WriteString("=" + r.value)
		case opNotEquals:
			b.WriteString("!=" + r.value)
		case opIn:
			b.WriteString(" in (" + setText(r.values) + ")")
		case opNotIn:
			b.WriteString(" notin (" + setText(r.values) + ")")
		case opGreaterThan:
			b.WriteString(">" + r.value)
		case opLessThan:
			b.WriteString("<" + r.value)
		}
	}
	return b.String()
}

// setText is the text of in's and notin's values; a lone empty value
// is "," ("()" would be no value).
func setText(values []string) string {
	if len(values) == 1 && values[0] == "" {
		return ","
	}
	return strings.Join(values, ",")
}

// matches reports whether labels ("source:key=value" or "key=value") satisfy
// every requirement.
func (s selector) matches(labels []string) bool {
	for i := range s {
		if !s[i].matches(labels) {
			return false
		}
	}
	return true
}

// matches applies r as Kubernetes does: a label with the key (from the
// source, or any when it has none) must be there for key, =, in, > and
// <, with a value that is r's (=), one of r's (in) or an integer above or
// below r's (> and <); !key needs none; != and notin need none with such
// a value.
func (r *requirement) matches(labels []string) bool {
	found := false // a label with this key and, for =, !=, in, notin, > and <, a value that satisfies it
	for _, l := range labels {
		src, key, val := splitLabel(l)
		if key != r.key || (r.source != "" && src != r.source) {
			continue
		}
		if r.valueMatches(val) {
			found = true
			break
		}
	}
	if r.op == opNotExists || r.op == opNotEquals || r.op == opNotIn {
		return !found
	}
	return found
}

// valueMatches reports whether a label value satisfies r's value test
// (that of != and notin is their positive's).
func (r *requirement) valueMatches(val string) bool {
	switch r.op {
	case opEquals, opNotEquals:
		return val == r.value
	case opIn, opNotIn:
		_, ok := slices.BinarySearch(r.values, val)
		return ok
	case opGreaterThan, opLessThan:
		n, err := strconv.ParseInt(val, 10, 64)
		return err == nil && (r.op == opGreaterThan && n > r.number || r.op == opLessThan && n < r.number)
	}
	return true // key, !key
}

// splitLabel splits "source:key=value"; the source and value may be absent.
// A colon counts as the source separator only before the '='.
func splitLabel(l string) (source, key, value string) {
	kv := l
	if i := strings.IndexByte(l, ':'); i >= 0 {
		if eq := strings.IndexByte(l, '='); eq < 0 || i < eq {
			source, kv = l[:i], l[i+1:]
		}
	}
	key, value, _ = strings.Cut(kv, "=")
	return source, key, value
}
