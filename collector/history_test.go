package collector

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// fakeHistory answers every query with flows (or fails to begin with err)
// and records the queries, as a history Reader such as ClickHouse does.
type fakeHistory struct {
	mu      sync.Mutex
	flows   []api.Flow
	err     error
	queries []flowquery.Query
}

func (h *fakeHistory) Query(_ context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	h.mu.Lock()
	h.queries = append(h.queries, q)
	flows, err := h.flows, h.err
	h.mu.Unlock()
	if err != nil {
		return flowquery.Outcome{}, err
	}
	if err := a.Begin(nil); err != nil {
		return flowquery.Outcome{}, err
	}
	for i := range flows {
		if err := a.Flow(&flows[i]); err != nil {
			return flowquery.Outcome{}, err
		}
	}
	return flowquery.Outcome{}, nil
}

func (h *fakeHistory) Follow(context.Context, flowquery.Query, flowquery.Answer) (flowquery.Outcome, error) {
	return flowquery.Outcome{}, flowquery.ErrNotLive
}

// historyServer serves a collector (not running: the ring holds nothing)
// with history h and extra handlers.
func historyServer(t *testing.T, h flowquery.Reader, handlers map[string]http.Handler) string {
	t.Helper()
	opts := Options{
		Topology: testTopology(),
		Sources:  []Source{&apitest.Source{}},
		Handlers: handlers,
	}
	if h != nil {
		opts.History = h
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestFlowsFromHistory(t *testing.T) {
	h := &fakeHistory{flows: []api.Flow{cannedFlow(1), cannedFlow(2), cannedFlow(3)}}
	base := historyServer(t, h, nil)

	code, body, hdr := get(t, base+"/api/v1/flows?source=clickhouse&last=3&filter=port=8080&since=2024-01-01T00:00:00Z")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	if got := sourcePorts(t, body); !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Errorf("source ports %v, want [1 2 3]", got)
	}
	if !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 3 {
		t.Errorf("want 3 NDJSON lines, got %q", body)
	}
	if len(h.queries) != 1 || h.queries[0].Filter.String() != "port=8080" ||
		!h.queries[0].Since.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) || h.queries[0].Last != 3 || h.queries[0].First != 0 {
		t.Errorf("queries %+v, want one with filter port=8080, since 2024-01-01, last 3", h.queries)
	}

	// first and the default bound travel too.
	get(t, base+"/api/v1/flows?source=clickhouse&first=2")
	get(t, base+"/api/v1/flows?source=clickhouse")
	if q := h.queries[1]; q.First != 2 || q.Last != 0 {
		t.Errorf("first=2 became %+v", q)
	}
	if q := h.queries[2]; q.Last != flowquery.DefaultLast || q.First != 0 {
		t.Errorf("no bound became %+v, want last=%d", q, flowquery.DefaultLast)
	}
}

func TestFlowsFromRingIsTheDefault(t *testing.T) {
	h := &fakeHistory{flows: []api.Flow{cannedFlow(1)}}
	base := historyServer(t, h, nil)
	for _, q := range []string{"", "?source=ring", "?source="} {
		code, body, _ := get(t, base+"/api/v1/flows"+q)
		if code != http.StatusOK || body != "" {
			t.Errorf("%q: status %d body %q, want 200 and the (empty) ring", q, code, body)
		}
	}
	if len(h.queries) != 0 {
		t.Errorf("history queried %d times for ring requests", len(h.queries))
	}
}

func TestFlowsFromHistoryErrors(t *testing.T) {
	h := &fakeHistory{err: errors.New("clickhouse: connection refused")}
	base := historyServer(t, h, nil)
	noHistory := historyServer(t, nil, nil)
	for _, tc := range []struct {
		url  string
		code int
		want string
	}{
		{base + "/api/v1/flows?source=clickhouse&last=5", http.StatusBadGateway, "clickhouse: connection refused"},
		{base + "/api/v1/flows?source=clickhouse&follow=1", http.StatusBadRequest, "follow"},
		{base + "/api/v1/flows?source=clickhouse&follow", http.StatusBadRequest, "follow"},
		{base + "/api/v1/flows?source=kafka", http.StatusBadRequest, "source"},
		{base + "/api/v1/flows?source=ring&source=clickhouse", http.StatusBadRequest, "more than once"},
		{base + "/api/v1/flows?source=clickhouse&filter=nope=1", http.StatusBadRequest, "filter"},
		{noHistory + "/api/v1/flows?source=clickhouse", http.StatusBadRequest,
			"history is not configured (start the collector with --clickhouse)"},
	} {
		code, body, _ := get(t, tc.url)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.url, code, body, tc.code, tc.want)
		}
	}
	if len(h.queries) != 1 {
		t.Errorf("history queried %d times, want once (bad requests never reach it)", len(h.queries))
	}
}

// A catch-all handler (the web UI at "GET /") must not shadow the API.
func TestAPIWinsOverCatchAllHandler(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>ui")) })
	base := historyServer(t, &fakeHistory{flows: []api.Flow{cannedFlow(7)}}, map[string]http.Handler{"GET /": ui})
	for path, want := range map[string]string{
		"/":                                   "<html>ui",
		"/api/v1/ws":                          "<html>ui",
		"/healthz":                            "ok",
		"/api/v1/status":                      `"version"`,
		"/api/v1/flows?source=clickhouse":     `"source_port":7`,
		"/api/v1/flows?source=ring&last=1000": "",
	} {
		code, body, _ := get(t, base+path)
		if code != http.StatusOK || (want == "" && body != "") || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q, want 200 with %q", path, code, body, want)
		}
	}
}
