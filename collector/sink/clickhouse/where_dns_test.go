package clickhouse

import (
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// dnsFilters are filters of the dns kind (source_names, destination_names)
// with Hubble's patterns; each selects some of genFlows' flows, not all.
var dnsFilters = [][]string{
	{"dns=api.example.com"},
	{"to:dns=api.example.com"},
	{"from:dns=api.example.com"},
	{"dns=*.example.com"},
	{"to:dns=*.example.*"},
	{"from:dns=*"},
	{"!dns=db.internal"},
	{"!to:dns=*.example.com", "protocol=tcp"},
	{"dns=www.example.com", "dns=db.internal"},
	{"from:dns=*.com"}, // not it's.example.com: * is [-.0-9a-z]
}

// The dns kind's SQL (has, arrayExists with match) selects exactly what
// filter.Match selects.
func TestDNSNamesQueryAgreesWithFilterMatch(t *testing.T) {
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	flows := genFlows(51, 2000, base)
	var sets []*filter.Set
	for _, chips := range dnsFilters {
		set := filter.MustParseSet(chips...)
		if n := len(goQuery(flows, flowquery.Query{Filter: set})); n == 0 || n == len(flows) {
			t.Errorf("%q matches %d of the %d flows: the data does not test it", chips, n, len(flows))
		}
		if _, _, exact := whereClause(flowquery.Query{Filter: set}); !exact {
			t.Errorf("%q is not said exactly in SQL", chips)
		}
		sets = append(sets, set)
	}
	s := storeWith(t, flows)
	checkQueriesAgree(t, s, flows, sets)
	got, err := query(t, s, flowquery.Query{Filter: filter.MustParseSet("to:dns=a.b.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got[0].DestinationNames) != 2 || got[0].DestinationNames[1] != "www.example.com" {
		t.Fatalf("names read back: %+v", got)
	}
}
