package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// The L7 end-to-end test's checks of the L7 filters and metrics (see
// TestE2EL7RecordsReachEveryReader). Its L7 records, by index: 0 PUT
// request, 1 its 201 response, 2 DNS query, 3 its answer, 4 GET request, 5
// its 503 response.

// l7FilterCases are filters in periscope observe's and hubble observe's
// flags (the same, as the kinds take hubble's names) and the L7 records
// they select.
var l7FilterCases = []struct {
	filters []string
	want    []int
}{
	{[]string{"--protocol", "http"}, []int{0, 1, 4, 5}},
	{[]string{"--protocol", "http", "--http-status", "5+"}, []int{5}},
	{[]string{"--http-status", "201"}, []int{1}},
	{[]string{"--http-method", "get", "--http-path", "^/api/items$"}, []int{4, 5}},
	{[]string{"--http-url", `\?page=2$`}, []int{4, 5}},
	{[]string{"--http-header", "retry-after:1"}, []int{5}},
	{[]string{"--protocol", "http", "--not", "--http-status", "5+"}, []int{0, 1, 4}},
}

// checkObserveL7Filters runs `periscope observe --source source` with each
// of l7FilterCases, and --dns-query, and checks the records printed.
func checkObserveL7Filters(t *testing.T, addr, source string, l7 []api.Flow) {
	t.Helper()
	cases := append(slices.Clone(l7FilterCases), struct {
		filters []string
		want    []int
	}{[]string{"--dns-query", `^example\.com\.$`}, []int{2, 3}})
	for _, tc := range cases {
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"observe", "--server", addr, "--all", "--source", source, "-o", "json"}, tc.filters...))
		cmd.SetOut(&out)
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("periscope observe %s: %v", strings.Join(tc.filters, " "), err)
		}
		if got := l7Indices(t, out.String(), l7); !slices.Equal(got, tc.want) {
			t.Errorf("periscope observe --source %s %s printed L7 records %v, want %v", source, strings.Join(tc.filters, " "), got, tc.want)
		}
	}
}

// checkHubbleL7Filters runs the real hubble CLI against the Hubble API at
// addr: --protocol http prints the HTTP records' L7 lines and nothing
// else, and the HTTP filters select what periscope observe's do.
func checkHubbleL7Filters(t *testing.T, bin, addr string, l7 []api.Flow) {
	t.Helper()
	out := runHubbleCLI(t, bin, "observe", "--all", "--color", "never", "--protocol", "http", "--server", addr)
	lines := slices.Collect(strings.Lines(strings.TrimSpace(out)))
	for _, want := range []string{
		" http-request FORWARDED (HTTP/1.1 PUT http://backend:8080/applicants/_create/103294)",
		" http-response FORWARDED (HTTP/1.1 201 12ms (PUT http://backend:8080/applicants/_create/103294))",
		" http-request FORWARDED (HTTP/1.1 GET http://backend:8080/api/items?page=2)",
		" http-response FORWARDED (HTTP/1.1 503 30ms (GET http://backend:8080/api/items?page=2))",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hubble observe --protocol http lacks %q:\n%s", want, out)
		}
	}
	if len(lines) != 4 || strings.Contains(out, "dns-") {
		t.Errorf("hubble observe --protocol http printed %d lines, want the 4 HTTP records':\n%s", len(lines), out)
	}
	for _, tc := range l7FilterCases {
		args := append([]string{"observe", "--all", "-o", "json", "--server", addr}, tc.filters...)
		if got := l7Indices(t, runHubbleCLI(t, bin, args...), l7); !slices.Equal(got, tc.want) {
			t.Errorf("hubble observe %s printed L7 records %v, want %v", strings.Join(tc.filters, " "), got, tc.want)
		}
	}
}

// l7Indices reads JSON lines of flows (periscope's and hubble's are the
// same shape) and returns each flow's index in l7, failing on a flow that
// is none of them.
func l7Indices(t *testing.T, out string, l7 []api.Flow) []int {
	t.Helper()
	var got []int
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var f api.Flow
		if err := api.ParseJSON([]byte(line), &f); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		i := slices.IndexFunc(l7, func(w api.Flow) bool { return w.UUID == f.UUID })
		if i < 0 {
			t.Errorf("a flow that is none of the L7 records: %s", line)
			continue
		}
		got = append(got, i)
	}
	return got
}

// checkHTTPMetrics scrapes the collector's /metrics: the HTTP golden
// signals count the test source's responses, and move when it emits
// another.
func checkHTTPMetrics(t *testing.T, addr string, src *apitest.Source) {
	t.Helper()
	exchange := map[string]string{"source": "default/frontend-1", "destination": "default/backend-1", "reporter": "client"}
	put := with(exchange, map[string]string{"method": "PUT", "status": "201", "protocol": "HTTP/1.1"})
	get := with(exchange, map[string]string{"method": "GET", "status": "503", "protocol": "HTTP/1.1"})
	getDuration := with(exchange, map[string]string{"method": "GET"})

	body := scrape(t, addr)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metrics.HTTPRequestsTotal, put, 1},
		{metrics.HTTPRequestsTotal, get, 1},
		{metrics.HTTPRequestDurationSeconds + "_count", getDuration, 1},
		{metrics.HTTPRequestDurationSeconds + "_sum", getDuration, 0.03},
	} {
		if got, ok := metricValue(body, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v\n%s", c.name, c.labels, got, ok, c.want, grepLines(body, "periscope_http_"))
		}
	}

	for _, f := range e2eFailingGet(time.Now(), 43301) {
		src.Live <- f
	}
	waitUntil(t, "the new 503 counted", func() bool {
		n, _ := metricValue(scrape(t, addr), metrics.HTTPRequestsTotal, get)
		return n == 2
	})
	body = scrape(t, addr)
	if n, _ := metricValue(body, metrics.HTTPRequestsTotal, put); n != 1 {
		t.Errorf("the PUT's series moved to %v with the GET's", n)
	}
	if n, _ := metricValue(body, metrics.HTTPRequestDurationSeconds+"_count", getDuration); n != 2 {
		t.Errorf("the GET's durations count %v, want 2", n)
	}
}

// with is a copy of base with extra's labels added.
func with(base, extra map[string]string) map[string]string {
	m := maps.Clone(base)
	maps.Copy(m, extra)
	return m
}

// scrape returns the collector's /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// metricValue is the value of the sample of name whose labels are exactly
// labels, in Prometheus' text format.
func metricValue(body, name string, labels map[string]string) (float64, bool) {
	for line := range strings.Lines(body) {
		m := sampleLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] != name {
			continue
		}
		got := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			got[p[1]] = p[2]
		}
		if !maps.Equal(got, labels) {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		return v, err == nil
	}
	return 0, false
}

// grepLines are the lines of s that contain sub, for failure messages.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) && !strings.HasPrefix(line, "#") {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
