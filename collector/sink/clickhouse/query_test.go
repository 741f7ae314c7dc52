package clickhouse

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

// storeWith opens a store holding flows.
func storeWith(t *testing.T, flows []api.Flow) *Store {
	t.Helper()
	s, _ := openStore(t, nil, "periscope")
	if err := s.Write(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	return s
}

func uuids(flows []api.Flow) []string {
	out := make([]string, len(flows))
	for i := range flows {
		out[i] = string(flows[i].UUID[:])
	}
	return out
}

// goQuery is the reference: the flows q.Matches selects, oldest first.
func goQuery(flows []api.Flow, q flowquery.Query) []api.Flow {
	var out []api.Flow
	for i := range flows {
		if q.Matches(&flows[i]) {
			out = append(out, flows[i])
		}
	}
	slices.SortStableFunc(out, func(a, b api.Flow) int { return a.Time.Compare(b.Time) })
	if q.First > 0 && len(out) > q.First {
		out = out[:q.First]
	}
	if q.Last > 0 && len(out) > q.Last {
		out = out[len(out)-q.Last:]
	}
	return out
}

var semanticFilters = [][]string{
	nil,
	{"namespace=shop"},
	{"from:namespace=shop"},
	{"to:namespace=shop", "to:namespace=default"},
	{"!namespace=default"},
	{"from:pod=frontend"},
	{"pod=shop/db"},
	{"pod=kube-system/"},
	{"ip=10.0.1.0/24"},
	{"to:ip=192.168.1.7"},
	{"ip=fd00::/16"},
	{"!ip=::/0"},
	{"ip=0.0.0.0/0"},
	{"port=443", "protocol=tcp"},
	{"to:port=53", "!verdict=dropped"},
	{"protocol=icmp"},
	{"tcp-flag=SYN,ACK"},
	{"tcp-flag=rst", "tcp-flag=fin"},
	{"verdict=dropped", "verdict=audit"},
	{"type=sock"},
	{"identity=2000"},
	{"from:workload=fron"},
	{"node=node-a"},
	{"node=node-*"},
	{"!node=worker-?"},
	{"label=k8s:app=web"},
	{"from:label=app=api,!reserved:host"},
	{"label=tier"},
	{"to:label=app!=db"},
	{"!label=host"},
	{"label=any:app=web,custom:tier=backend"},
	{"label=app in (web,api)"},
	{"from:label=k8s:app notin (db)"},
	{"!label=app in (web)", "to:label=tier notin (backend,x)"},
	{"label=app in (web,)"},
	{"dns=example.com"},
	{"!dns=example.com"},
	{"namespace=shop", "!to:namespace=shop", "from:port=8080", "protocol=udp"},
	{"traffic-direction=ingress"},
	{"!traffic-direction=egress", "reply=false"},
	{"reply=true"},
	{"ip-version=ipv6"},
	{"ip-version=none"},
	{"drop-reason=POLICY_DENIED"},
	{"drop-reason=POLICY_DENY"},
	{"event-type=drop"},
	{"event-type=trace"},
	{"event-type=policy-verdict"},
	{"event-type=l7"},
	{"event-type=9"},
	{"event-type=drop:POLICY_DENIED"},
	{"event-type=trace:from-endpoint"},
	{"!event-type=trace:to-endpoint"},
	{"event-type=trace:from-network", "event-type=trace:to-network"},
	{"uuid=15000000-0000-0000-0700-000000000000"},
	{"!uuid=15000000-0000-0000-0700-000000000000"},
	{"interface=veth3"},
	{"interface=:3"},
	{"interface=veth3:3", "interface=veth4"},
}

// semanticSets are filters no chip list says: they are read in Hubble's
// shape (GetFlows' whitelist and blacklist).
var semanticSets = []*filter.Set{
	filter.NewSet([]*filter.Filter{filter.MustParse("verdict=dropped"), filter.MustParse("to:port=53", "protocol=udp")}, nil),
	filter.NewSet(nil, []*filter.Filter{filter.MustParse("namespace=shop", "protocol=tcp")}),
	filter.NewSet([]*filter.Filter{filter.MustParse("from:namespace=default")},
		[]*filter.Filter{filter.MustParse("to:port=443"), filter.MustParse("verdict=audit", "type=sock")}),
	filter.NewSet(nil, []*filter.Filter{filter.MustParse("node=node-*")}),
	filter.NewSet([]*filter.Filter{filter.MustParse("node=worker-?"), filter.MustParse("event-type=drop")}, nil),
	filter.NewSet(nil, []*filter.Filter{filter.MustParse()}),
}

// sets is every semantic filter as a filter.Set.
func sets() []*filter.Set {
	out := []*filter.Set{nil}
	for _, chips := range semanticFilters {
		out = append(out, filter.MustParseSet(chips...))
	}
	return append(out, semanticSets...)
}

// query reads s through its flowquery.Reader.
func query(t *testing.T, s *Store, q flowquery.Query) ([]api.Flow, error) {
	t.Helper()
	var out []api.Flow
	_, err := s.Query(context.Background(), q, flowquery.Answer{Flow: func(f *api.Flow) error {
		out = append(out, *f)
		return nil
	}})
	return out, err
}

func TestHistoryQueryAgreesWithFilterMatch(t *testing.T) {
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	flows := genFlows(21, 3000, base)
	checkQueriesAgree(t, storeWith(t, flows), flows, sets())
}

// checkQueriesAgree queries s, which holds flows, with each filter, whole
// and in windows, and holds the answers to filter.Match's. The SQL alone,
// without the Go safety net, must already be exact where whereClause says
// it is, and a superset where it says it is not.
func checkQueriesAgree(t *testing.T, s *Store, flows []api.Flow, filters []*filter.Set) {
	t.Helper()
	ctx := context.Background()
	for _, f := range filters {
		for _, q := range []flowquery.Query{
			{Filter: f},
			{Filter: f, Last: 25},
			{Filter: f, First: 7},
			{Filter: f, Since: flows[500].Time, Until: flows[1500].Time},
		} {
			got, err := query(t, s, q)
			if err != nil {
				t.Fatalf("%v: %v", f, err)
			}
			want := goQuery(flows, q)
			if !slices.Equal(uuids(got), uuids(want)) {
				t.Errorf("filter %v first %d last %d: got %d flows, want %d", f, q.First, q.Last, len(got), len(want))
			}
		}
		where, args, exact := whereClause(flowquery.Query{Filter: f})
		sqlOnly, err := sqlRows(ctx, s, "SELECT "+columnList()+" FROM periscope.flows WHERE "+where+" ORDER BY time, time_ns", args)
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		want := goQuery(flows, flowquery.Query{Filter: f})
		selected := map[string]bool{}
		for _, id := range uuids(sqlOnly) {
			selected[id] = true
		}
		missing := 0
		for _, id := range uuids(want) {
			if !selected[id] {
				missing++
			}
		}
		switch {
		case missing > 0:
			t.Errorf("filter %v: SQL alone misses %d of the %d flows filter.Match selects (WHERE %s)", f, missing, len(want), where)
		case exact && len(sqlOnly) != len(want):
			t.Errorf("filter %v: SQL alone selects %d flows, filter.Match %d", f, len(sqlOnly), len(want))
		}
	}
}

// Every filter kind is pushed down to SQL or said not to be.
func TestEveryKindHasSQL(t *testing.T) {
	for _, k := range filter.Kinds() {
		if _, ok := kindSQL[k.Name]; !ok {
			t.Errorf("filter kind %q has no SQL: add it to kindSQL in where.go (notPushedDown when the table has no column for it)", k.Name)
		}
	}
	for name := range kindSQL {
		found := false
		for _, k := range filter.Kinds() {
			found = found || k.Name == name
		}
		if !found {
			t.Errorf("kindSQL has %q, which is no filter kind", name)
		}
	}
	for name := range kindNarrowing {
		if _, ok := kindSQL[name]; !ok {
			t.Errorf("kindNarrowing has %q, which is no filter kind", name)
		}
	}
}

func TestHistoryIsNotLive(t *testing.T) {
	var s *Store
	if _, err := s.Follow(context.Background(), flowquery.Query{}, flowquery.Answer{}); !errors.Is(err, flowquery.ErrNotLive) {
		t.Errorf("Follow: %v, want ErrNotLive", err)
	}
}

func TestRowsDecodeBackIntoTheSameFlow(t *testing.T) {
	flows := genFlows(22, 200, time.Now().UTC().Add(-time.Hour))
	s := storeWith(t, flows)
	got, err := query(t, s, flowquery.Query{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[[16]byte]api.Flow{}
	for _, f := range got {
		byID[f.UUID] = f
	}
	for i := range flows {
		want := api.AppendJSON(nil, &flows[i])
		g, ok := byID[flows[i].UUID]
		if !ok {
			t.Fatalf("flow %d missing", i)
		}
		if have := api.AppendJSON(nil, &g); string(have) != string(want) {
			t.Fatalf("flow %d round trip:\n got %s\nwant %s", i, have, want)
		}
	}
}

func TestHostileFilterValuesSelectOnlyTheirRows(t *testing.T) {
	base := time.Now().UTC().Add(-time.Hour)
	flows := genFlows(23, 400, base)
	hostile := []string{`' OR 1=1 --`, `x'; DROP TABLE flows; --`, `a\`, `a\'`, `/* c */`, "semi;colon", `"dq"`, "nul\x00byte", "it's; DROP TABLE flows; --"}
	for i, h := range hostile {
		flows[i].Source.Namespace = h
		flows[i].Source.PodName = h + "-pod"
		flows[i].Source.Labels = []string{"k8s:app=" + h}
		flows[i].NodeName = h
	}
	s := storeWith(t, flows)
	for _, h := range hostile {
		for _, chip := range []string{"from:namespace=" + h, "pod=" + h, "node=" + h, "workload=" + h, "from:label=app=" + h, "interface=" + h} {
			f, err := filter.ParseSet([]string{chip})
			if err != nil {
				t.Logf("chip %q refused by the parser: %v", chip, err)
				continue
			}
			got, err := query(t, s, flowquery.Query{Filter: f})
			if err != nil {
				t.Logf("chip %q: clear error %v", chip, err)
				continue
			}
			want := goQuery(flows, flowquery.Query{Filter: f})
			if strings.HasPrefix(chip, "from:namespace=") && len(want) == 0 {
				t.Errorf("chip %q: the data has no row for it; the test proves nothing", chip)
			}
			if !slices.Equal(uuids(got), uuids(want)) {
				t.Errorf("chip %q: got %d rows, want %d", chip, len(got), len(want))
			}
			for _, g := range got {
				if !f.Match(&g) {
					t.Errorf("chip %q returned a row it does not match", chip)
				}
			}
		}
	}
	n, _, _ := tableChecksum(t, s)
	if n != uint64(len(flows)) {
		t.Errorf("table has %d rows after the hostile queries, want %d", n, len(flows))
	}
	if !strings.Contains(whereOf(t, "namespace="+hostile[0]), "?") {
		t.Error("the filter value is not a parameter")
	}
}

// whereOf is the WHERE text of a chip; values must appear only as "?".
func whereOf(t *testing.T, chip string) string {
	where, args, _ := whereClause(flowquery.Query{Filter: filter.MustParseSet(chip)})
	for _, a := range args {
		if s, ok := a.(string); ok && strings.Contains(where, s) {
			t.Errorf("value %q formatted into SQL: %s", s, where)
		}
	}
	return where
}
