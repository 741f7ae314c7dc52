package filter

import (
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// dropped is a predicate no chip kind is asked to say.
var dropped = Predicate{Name: "dropped()", Match: func(f *api.Flow) bool { return f.Verdict == api.VerdictDropped }}

func TestPredicatesAreANDedAndNeverChips(t *testing.T) {
	tests := []struct {
		name  string
		set   *Set
		want  []string
		str   string
		terms int // Terms of the first allowed filter
	}{
		{"a predicate alone selects what it matches", NewSet([]*Filter{(*Filter)(nil).With(dropped)}, nil),
			[]string{"udp"}, "any(dropped())", 1},
		{"a predicate ANDs with the filter's chips", NewSet([]*Filter{MustParse("protocol=udp", "protocol=tcp").With(dropped)}, nil),
			[]string{"udp"}, "any(protocol=udp protocol=tcp dropped())", 2},
		{"a predicate in a denied filter excludes what it matches", NewSet(nil, []*Filter{(*Filter)(nil).With(dropped)}),
			[]string{"icmp", "sock", "tcp"}, "none(dropped())", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matching(tt.set); !slices.Equal(got, tt.want) {
				t.Errorf("matches %v, want %v", got, tt.want)
			}
			if chips, ok := tt.set.Chips(); ok {
				t.Errorf("Chips() = %q, ok: a predicate cannot be said as chips", chips)
			}
			if got := tt.set.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if tt.set.Empty() {
				t.Error("a set with a predicate is Empty")
			}
			if tt.terms > 0 {
				terms := tt.set.Allow()[0].Terms()
				if len(terms) != tt.terms || terms[len(terms)-1].Kind != PredicateKind || terms[len(terms)-1].Values[0].Text != "dropped()" {
					t.Errorf("Terms() = %+v, want %d ending in the predicate", terms, tt.terms)
				}
			}
		})
	}
}

func TestWithLeavesTheFilterAlone(t *testing.T) {
	f := MustParse("protocol=tcp")
	g := f.With(dropped)
	if f.Predicates() || !g.Predicates() {
		t.Fatalf("f.Predicates() = %v, g.Predicates() = %v", f.Predicates(), g.Predicates())
	}
	if !f.Match(tcpFlow) || g.Match(tcpFlow) {
		t.Error("With changed the filter it was called on")
	}
}
