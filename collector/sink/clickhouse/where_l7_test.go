package clickhouse

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// genL7Flows makes n varied L7 flows around base (genFlows' flows with an
// L7 record): HTTP, DNS and Kafka records, records without one and records
// breaking the one-of; status codes, methods, URLs and headers at the L7
// kinds' edges.
func genL7Flows(seed uint64, n int, base time.Time) []api.Flow {
	r := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	methods := []string{"GET", "get", "Get", "POST", "PUT", "DELETE", "PATCH", "K\u212a", ""}
	codes := []uint32{0, 99, 100, 200, 201, 204, 301, 404, 418, 500, 503, 599, 5030, 50000, 65535}
	urls := []string{
		"http://api.example.com:8080/v1/users/7?x=1", "http://api.example.com/v1/users%2F7", "/v1/orders", "/v2/orders?page=2",
		"http://[fd00::1]:80/v2/items", "http://u@h/v1/users/7", "https://example.org/", "no-slash", "mailto:x@example.com",
		"http://h i/v1/", "/v1/a%zz", "", "*", "/v1/users/7#frag",
	}
	headers := []api.HTTPHeader{{Key: "server", Value: "envoy"}, {Key: "Server", Value: "envoy"},
		{Key: "content-type", Value: "application/json"}, {Key: "x-empty"}, {Key: ":authority", Value: "api"}}
	queries := []string{"www.example.com.", "example.com.", "api.example.org.", "", "EXAMPLE.COM."}
	traces := []string{"", "", traceA, traceB}

	flows := genFlows(seed, n, base)
	for i := range flows {
		f := &flows[i]
		f.Type = api.FlowTypeL7
		l7 := &api.L7{Type: api.L7FlowType(1 + r.IntN(3)), LatencyNs: uint64(r.IntN(1e9))}
		httpRecord := func() *api.HTTP {
			h := &api.HTTP{Method: pick(methods), URL: pick(urls), Protocol: "HTTP/1.1"}
			if l7.Type == api.L7TypeResponse {
				h.Code = codes[r.IntN(len(codes))]
			}
			for _, hd := range headers {
				if r.IntN(3) == 0 {
					h.Headers = append(h.Headers, hd)
				}
			}
			return h
		}
		switch k := r.IntN(20); {
		case k < 9:
			l7.HTTP = httpRecord()
		case k < 15:
			l7.DNS = &api.DNS{Query: pick(queries), ObservationSource: "proxy"}
		case k < 17:
			l7.Kafka = &api.Kafka{Topic: "orders", APIKey: "produce"}
		case k < 18: // no record
		default: // breaks the one-of: readers take the DNS record
			l7.DNS = &api.DNS{Query: pick(queries)}
			l7.HTTP = httpRecord()
		}
		l7.TraceID = pick(traces)
		f.L7 = l7
	}
	return flows
}

// Trace IDs some of genL7Flows' records carry.
const (
	traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceB = "00f067aa0ba902b700f067aa0ba902b7"
)

// l7SemanticFilters are filters of the L7 kinds; none says no flow of
// genL7Flows matches unless it is marked so.
var l7SemanticFilters = []struct {
	chips []string
	none  bool
}{
	{chips: []string{"protocol=http"}},
	{chips: []string{"protocol=dns", "protocol=kafka"}},
	{chips: []string{"!protocol=http"}},
	{chips: []string{"protocol=tcp", "protocol=dns"}},
	{chips: []string{"http-status=404"}},
	{chips: []string{"http-status=5+"}},
	{chips: []string{"http-status=50+"}},
	{chips: []string{"http-status=1+"}},
	{chips: []string{"!http-status=2+"}},
	{chips: []string{"http-status=2+", "http-status=404"}},
	{chips: []string{"http-method=get"}},
	{chips: []string{"!http-method=GET"}},
	{chips: []string{"http-method=KK"}, none: true}, // the Kelvin sign is no K
	{chips: []string{"http-method=get", "http-method=delete", "http-status=5+"}},
	{chips: []string{"http-header=server:envoy"}},
	{chips: []string{"http-header=x-empty:", "http-header=:authority:api"}},
	{chips: []string{"!http-header=server:envoy"}},
	{chips: []string{"http-path=^/v1/"}},
	{chips: []string{"http-path=users/7$"}},
	{chips: []string{"!http-path=^/v1/"}},
	{chips: []string{"http-path=^$"}},
	{chips: []string{"http-url=example"}},
	{chips: []string{"http-url=^/"}},
	{chips: []string{"dns-query=example\\.com\\.$"}},
	{chips: []string{"!dns-query=^www"}},
	{chips: []string{"dns-query=^$"}},
	{chips: []string{"protocol=http", "http-path=^/v1/", "http-status=2+", "from:namespace=shop"}},
	{chips: []string{"trace-id=" + traceA}},
	{chips: []string{"trace-id=" + traceA, "trace-id=" + traceB}},
	{chips: []string{"!trace-id=" + traceB}},
	{chips: []string{"trace-id=" + traceA, "protocol=http"}},
	// Hubble's: an L7 record is an L7 event with no drop reason, whatever
	// its verdict; drop events and drop reasons are the datapath's.
	{chips: []string{"event-type=drop"}},
	{chips: []string{"event-type=drop:POLICY_DENIED"}},
	{chips: []string{"drop-reason=POLICY_DENIED"}},
	{chips: []string{"event-type=l7", "verdict=dropped"}},
}

// l7SemanticSets are L7 filters in Hubble's shape.
var l7SemanticSets = []*filter.Set{
	filter.NewSet([]*filter.Filter{filter.MustParse("http-status=5+"), filter.MustParse("dns-query=^www")}, nil),
	filter.NewSet([]*filter.Filter{filter.MustParse("protocol=http")}, []*filter.Filter{filter.MustParse("http-path=^/v2/")}),
	filter.NewSet(nil, []*filter.Filter{filter.MustParse("http-method=GET", "http-status=2+")}),
	filter.NewSet([]*filter.Filter{filter.MustParse("http-url=orders"), filter.MustParse("verdict=dropped")},
		[]*filter.Filter{filter.MustParse("http-header=content-type:application/json")}),
}

// The L7 kinds' SQL selects what filter.Match selects, over L7 rows of every
// shape and L3/L4 rows; where it narrows rather than says a term, the SQL
// alone selects a superset.
func TestL7HistoryQueryAgreesWithFilterMatch(t *testing.T) {
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	flows := append(genL7Flows(41, 3000, base), genFlows(42, 500, base)...)
	var sets []*filter.Set
	for _, sf := range l7SemanticFilters {
		set := filter.MustParseSet(sf.chips...)
		if n := len(goQuery(flows, flowquery.Query{Filter: set})); (n == 0) != sf.none || n == len(flows) {
			t.Errorf("%q matches %d of the %d flows: the data does not test it", sf.chips, n, len(flows))
		}
		sets = append(sets, set)
	}
	checkQueriesAgree(t, storeWith(t, flows), flows, append(sets, l7SemanticSets...))
}

// A regular expression's term narrows the SQL to the rows it can match,
// unless negated; a denied filter with one is left to Go whole.
func TestRegexpKindsNarrowTheirSQL(t *testing.T) {
	tests := []struct {
		chips     []string
		wantWhere string
	}{
		{[]string{"http-path=^/v1/"}, "(l7_protocol = 'http' AND http_path != '')"},
		{[]string{"http-url=x", "verdict=dropped"}, "(l7_protocol = 'http' AND http_path != '') AND ((verdict = ?))"},
		{[]string{"dns-query=example"}, "(l7_protocol = 'dns')"},
		{[]string{"!dns-query=example"}, "1"},
	}
	for _, tt := range tests {
		where, _, exact := whereClause(flowquery.Query{Filter: filter.MustParseSet(tt.chips...)})
		if exact || !strings.Contains(where, tt.wantWhere) {
			t.Errorf("%q: WHERE %s (exact %v), want it to hold %s and not be exact", tt.chips, where, exact, tt.wantWhere)
		}
	}
	where, _, exact := whereClause(flowquery.Query{Filter: filter.NewSet(nil, []*filter.Filter{filter.MustParse("http-path=a", "verdict=dropped")})})
	if exact || where != "1" {
		t.Errorf("a denied filter with a regular expression: WHERE %s (exact %v), want it left to Go", where, exact)
	}
	if where, args, exact := whereClause(flowquery.Query{Filter: filter.MustParseSet("http-status=5+")}); !exact ||
		!strings.Contains(where, "http_status BETWEEN ? AND ?") || len(args) != 6 {
		t.Errorf("http-status=5+: WHERE %s %v (exact %v)", where, args, exact)
	}
}
