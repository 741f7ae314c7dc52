package clickhouse

import (
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// A filter.Predicate (a Hubble CEL expression) has no SQL: the clause
// selects a superset, and filter.Match decides.
func TestAPredicateIsLeftToGo(t *testing.T) {
	p := filter.Predicate{Name: "cel(\"x\")", Match: func(*api.Flow) bool { return true }}
	tests := []struct {
		name string
		set  *filter.Set
		want string // the clause
	}{
		{"an allowed predicate leaves its filter's chips", filter.NewSet([]*filter.Filter{filter.MustParse("verdict=DROPPED").With(p)}, nil),
			"(((verdict = ?)))"},
		{"a denied filter with a predicate is left out whole", filter.NewSet(nil, []*filter.Filter{filter.MustParse("verdict=DROPPED").With(p)}),
			"1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			where, _, exact := whereClause(flowquery.Query{Filter: tt.set})
			if exact {
				t.Error("exact: a predicate cannot be said in SQL")
			}
			if where != tt.want || strings.Contains(where, "cel") {
				t.Errorf("clause %q, want %q", where, tt.want)
			}
		})
	}
}
