package filter

import (
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// PredicateKind is the Term.Kind of a predicate in Filter.Terms: no
// translation knows it, so it is always matched in Go.
const PredicateKind = "predicate"

// Predicate is a term whose test a caller supplies: a condition no chip
// kind says, such as Hubble's CEL expressions (relay/hubble compiles them;
// they need Hubble's flow type, which this package must not know). A
// Filter with one cannot be said as chips (Set.Chips is not ok) nor as SQL
// (its Term has PredicateKind), so readers match it in Go, where it is
// ANDed with the Filter's other terms.
type Predicate struct {
	// Name says the predicate in String and logs, e.g. `cel("_flow.verdict == 2")`.
	Name string
	// Match tests a flow. Unlike the chip kinds' tests it may allocate;
	// it must be safe for concurrent use.
	Match func(*api.Flow) bool
}

// With returns a copy of f that also requires p (nil f: a Filter of p
// alone).
func (f *Filter) With(p Predicate) *Filter {
	out := &Filter{}
	if f != nil {
		out.terms = f.terms
		out.preds = append(out.preds, f.preds...)
	}
	out.preds = append(out.preds, p)
	return out
}

// Predicates reports whether f holds a Predicate, which chips cannot say.
func (f *Filter) Predicates() bool { return f != nil && len(f.preds) > 0 }

// matchPredicates reports whether fl passes every predicate of f.
func (f *Filter) matchPredicates(fl *api.Flow) bool {
	for i := range f.preds {
		if !f.preds[i].Match(fl) {
			return false
		}
	}
	return true
}

// predicateNames writes the predicates' names for String.
func (f *Filter) predicateNames() string {
	names := make([]string, len(f.preds))
	for i, p := range f.preds {
		names[i] = p.Name
	}
	return strings.Join(names, " ")
}
