package filter

import (
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// Set is a request's filters in the shape of Hubble's GetFlows (whitelist
// and blacklist): a flow passes when it matches any allowed Filter (or none
// is given) and no denied Filter. With a Filter's own AND of terms, each an
// OR of values, a Set says everything a GetFlows request does; a list of
// chips is a Set of one allowed Filter (ParseSet).
//
// A Set is immutable and safe for concurrent use; a nil Set matches every
// flow.
type Set struct {
	allow, deny []*Filter
}

// NewSet makes the Set that allows what any of allow matches (everything
// when allow is empty) and denies what any of deny matches. An allowed
// Filter that matches every flow makes the others moot: they are dropped.
func NewSet(allow, deny []*Filter) *Set {
	s := &Set{allow: append([]*Filter(nil), allow...), deny: append([]*Filter(nil), deny...)}
	for _, f := range s.allow {
		if f.Empty() {
			s.allow = nil
			break
		}
	}
	for i, f := range s.deny {
		if f == nil {
			s.deny[i] = &Filter{} // a nil Filter matches everything, as an empty one
		}
	}
	return s
}

// ParseSet reads chips into a Set of one allowed Filter, or nil (every
// flow) when no chip is given. Errors are Parse's.
func ParseSet(chips []string) (*Set, error) {
	f, err := Parse(chips)
	if err != nil {
		return nil, err
	}
	if f.Empty() {
		return nil, nil
	}
	return &Set{allow: []*Filter{f}}, nil
}

// MustParseSet is ParseSet for chips known to be valid, as in tests; it
// panics on an error.
func MustParseSet(chips ...string) *Set {
	s, err := ParseSet(chips)
	if err != nil {
		panic(err)
	}
	return s
}

// Match reports whether fl matches an allowed Filter (or none is given)
// and no denied one. It does not allocate.
func (s *Set) Match(fl *api.Flow) bool {
	if s == nil {
		return true
	}
	if len(s.allow) > 0 {
		allowed := false
		for _, f := range s.allow {
			if f.Match(fl) {
				allowed = true
				break
			}
		}
		if !allowed {
			return false
		}
	}
	for _, f := range s.deny {
		if f.Match(fl) {
			return false
		}
	}
	return true
}

// Empty reports whether the set matches every flow without looking at it.
func (s *Set) Empty() bool {
	return s == nil || len(s.allow) == 0 && len(s.deny) == 0
}

// Allow returns the allowed Filters (empty: every flow is allowed). The
// slice is the Set's own: do not change it.
func (s *Set) Allow() []*Filter {
	if s == nil {
		return nil
	}
	return s.allow
}

// Deny returns the denied Filters. The slice is the Set's own: do not
// change it.
func (s *Set) Deny() []*Filter {
	if s == nil {
		return nil
	}
	return s.deny
}

// Chips returns chips that say exactly what the set says, for a reader that
// takes chips (a collector, through a relay); ok is false when chips cannot
// say it. They can when at most one Filter is allowed, no Filter has a
// Predicate, and every denied Filter is one term without negation: denying "kind=a OR kind=b" is the
// chips "!kind=a", "!kind=b", which Parse ORs into one negated term, and a
// negated term rejects a flow matching any of its values.
func (s *Set) Chips() (chips []string, ok bool) {
	if s.Empty() {
		return nil, true
	}
	if len(s.allow) > 1 {
		return nil, false
	}
	for _, f := range s.allow {
		if f.Predicates() {
			return nil, false
		}
	}
	for _, f := range s.deny {
		if len(f.terms) != 1 || f.terms[0].negate || f.Predicates() {
			return nil, false
		}
	}
	for _, f := range s.allow {
		chips = append(chips, f.Chips()...)
	}
	for _, f := range s.deny {
		for _, c := range f.Chips() {
			chips = append(chips, "!"+c)
		}
	}
	return chips, true
}

// String returns the set's chips when chips can say it, else its filters
// as "any(...) none(...)", for logs and tests.
func (s *Set) String() string {
	if chips, ok := s.Chips(); ok {
		return strings.Join(chips, " ")
	}
	var b strings.Builder
	list := func(name string, fs []*Filter) {
		if len(fs) == 0 {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		b.WriteByte('(')
		for i, f := range fs {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(f.String())
		}
		b.WriteByte(')')
	}
	list("any", s.allow)
	list("none", s.deny)
	return b.String()
}
