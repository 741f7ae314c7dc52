package dnsmatch

import "strings"

// Index finds the matchers of a set that select a name without trying
// each one: a matcher is filed under its literal tail (a matchName's whole
// name; a pattern's whole labels after its last star, as "svc.example."
// of "*.svc.example" or "**.svc.example"), which every name it selects
// ends with after a dot, so a name tries only the matchers filed under its
// own tails, and those that have none (a star in the last label, or stars
// alone). It is immutable and safe for concurrent use.
type Index struct {
	byTail map[string][]*Matcher
	always []*Matcher
}

// NewIndex indexes ms.
func NewIndex(ms []*Matcher) *Index {
	x := &Index{byTail: make(map[string][]*Matcher, len(ms))}
	for _, m := range ms {
		if tail := m.tail(); tail != "" {
			x.byTail[tail] = append(x.byTail[tail], m)
		} else {
			x.always = append(x.always, m)
		}
	}
	return x
}

// tail is what NewIndex files m under; "" when it must try every name.
func (m *Matcher) tail() string {
	if m.pattern == nil {
		return m.exact
	}
	if m.matchAll {
		return ""
	}
	p := Canonical(strings.ToLower(strings.TrimSpace(m.sel.MatchPattern)))
	star := strings.LastIndexByte(p, '*')
	dot := strings.IndexByte(p[star:], '.')
	return p[star+dot+1:] // "" when the star is in the last label
}

// Select appends to into the matchers that select name (any case, with
// or without the trailing dot), each once: those found under the name's
// tails, longest first, then those without a tail in the order given to
// NewIndex.
func (x *Index) Select(name string, into []*Matcher) []*Matcher {
	name = Canonical(name)
	into = appendSelecting(into, x.byTail[name], name)
	for i := 0; i < len(name)-1; i++ {
		if name[i] == '.' {
			into = appendSelecting(into, x.byTail[name[i+1:]], name)
		}
	}
	return appendSelecting(into, x.always, name)
}

func appendSelecting(into, ms []*Matcher, name string) []*Matcher {
	for _, m := range ms {
		if m.matchCanonical(name) {
			into = append(into, m)
		}
	}
	return into
}
