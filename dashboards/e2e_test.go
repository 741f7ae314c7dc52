package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy/envoytest"
)

// TestEveryQueryReturnsData runs the collector (the real binary, the real
// datapath) over netlab pods with real traffic and two policies (one
// endpoint in audit mode), the backend's HTTP port through Envoy (its
// access logs: the L7 records of the golden signals), storing into a real
// ClickHouse and scraped by a real Prometheus, and runs every query of
// every dashboard the way Grafana would: variables first (label_values
// through Prometheus' label API, their regex applied), then each panel's
// PromQL through the query API and each panel's SQL, its macros expanded
// as the ClickHouse plugin expands them, through ClickHouse's HTTP
// interface. Every one must answer without error and with data; a renamed
// metric, label or column fails it.
func TestEveryQueryReturnsData(t *testing.T) {
	labtest.RequireRoot(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		labtest.SkipOrFail(t, "prometheus not installed (apt-get install prometheus)")
	}
	if testing.Short() {
		t.Skip("starts a lab, a collector, ClickHouse and Prometheus: skipped with -short only (CI runs without -short, so there it always runs)")
	}
	envoyBin := envoytest.Binary(t)
	ch := chtest.Start(t)
	bin := periscopetest.Build(t)
	lab := labtest.NewLab(t)
	pods := map[string]*netlab.Pod{}
	for _, spec := range []netlab.PodSpec{
		{Name: "frontend", Namespace: "default", Labels: map[string]string{"app": "frontend"}},
		{Name: "backend", Namespace: "default", Labels: map[string]string{"app": "backend"}},
		{Name: "db", Namespace: "default", Labels: map[string]string{"app": "db"}},
		{Name: "outsider", Namespace: "other", Labels: map[string]string{"app": "outsider"}},
	} {
		p, err := lab.AddPod(spec)
		if err != nil {
			t.Fatal(err)
		}
		pods[spec.Name] = p
	}
	collector := startCollector(t, bin, envoyBin, lab, ch.DSN("periscope"))
	applyPolicy(t, collector, testPolicies)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	fe, be, db, out := pods["frontend"], pods["backend"], pods["db"], pods["outsider"]
	wg.Go(func() {
		_ = netlab.RunTraffic(ctx, netlab.TrafficOptions{},
			netlab.Traffic{Kind: netlab.Requests, From: fe, To: be, Port: 8080, Every: 200 * time.Millisecond}, // through Envoy
			netlab.Traffic{Kind: netlab.Requests, From: fe, To: be, Port: 8080, IPv6: true, Every: time.Second},
			netlab.Traffic{Kind: netlab.Stream, From: be, To: db, Port: 5432, Every: time.Second},
			netlab.Traffic{Kind: netlab.Datagrams, From: fe, To: db, Port: 53, Every: time.Second},
			netlab.Traffic{Kind: netlab.Requests, From: fe, To: db, Port: 5432, Every: time.Second},  // denied by a rule
			netlab.Traffic{Kind: netlab.Requests, From: out, To: db, Port: 5432, Every: time.Second}, // denied by default
			netlab.Traffic{Kind: netlab.Requests, From: out, To: fe, Port: 8080, Every: time.Second}, // audited
			netlab.Traffic{Kind: netlab.Echo, From: out, To: fe, Every: time.Second},
		)
	})
	promAddr := startPrometheus(t, promBin, collector.Addr)

	var dashboards []string
	all := loadDashboards(t)
	for name := range all {
		dashboards = append(dashboards, name)
	}
	slices.Sort(dashboards)
	failures := map[string]string{}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		clear(failures)
		ran := 0
		for _, name := range dashboards {
			ran += runDashboard(name, all[name], promAddr, ch.HTTPPort, failures)
		}
		if len(failures) == 0 {
			t.Logf("%d queries of %d dashboards answered with data", ran, len(dashboards))
			break
		}
		if time.Now().After(deadline) {
			for _, where := range slices.Sorted(maps.Keys(failures)) {
				t.Errorf("%s: %s", where, failures[where])
			}
			break
		}
		time.Sleep(2 * time.Second)
	}
	// Remove the policies so that the collector, stopping, leaves nothing
	// pinned or attached.
	for _, p := range []string{"default/db-clients", "default/frontend-guard"} {
		deletePolicy(t, collector, p)
	}
}

// runDashboard runs d's queries, noting in failures what failed (by where),
// and returns how many it ran.
func runDashboard(name string, d dashboardJSON, promAddr string, chHTTPPort int, failures map[string]string) int {
	values := map[string]string{}
	ran := 0
	for _, q := range queriesOf(name, d) {
		if q.variable == nil {
			continue
		}
		ran++
		v := q.variable
		got, err := variableValues(promAddr, substitute(v.Query, values), v.Regex)
		switch {
		case err != nil:
			failures[q.where] = err.Error()
		case len(got) == 0:
			failures[q.where] = "no values for " + substitute(v.Query, values)
		}
		// All when offered, else the first value, as Grafana starts.
		values[v.Name] = v.AllValue
		if !v.IncludeAll && len(got) > 0 {
			values[v.Name] = got[0]
		}
	}
	for _, q := range queriesOf(name, d) {
		if q.variable != nil {
			continue
		}
		ran++
		var err error
		switch q.datasource {
		case PrometheusType:
			err = runPromQL(promAddr, substitute(q.text, values), q.instant)
		case ClickHouseType:
			err = runSQL(chHTTPPort, q)
		default:
			err = fmt.Errorf("datasource %q", q.datasource)
		}
		if err != nil {
			failures[q.where] = err.Error()
		}
	}
	return ran
}

// Grafana's own variables, as the test sets them: a rate window several
// scrapes long, and the time range the queries cover.
var grafanaValues = map[string]string{
	"__rate_interval": "20s",
	"__interval":      "5s",
	"__range":         "5m",
}

// substitute puts the variables' values (and Grafana's) into a query.
func substitute(text string, values map[string]string) string {
	return variableRE.ReplaceAllStringFunc(text, func(ref string) string {
		name := variableRE.FindStringSubmatch(ref)[1]
		if v, ok := values[name]; ok {
			return v
		}
		if v, ok := grafanaValues[name]; ok {
			return v
		}
		return ref
	})
}

// labelValuesRE parses label_values(series, label).
var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)

// variableValues runs a label_values variable query as Grafana's
// Prometheus datasource does (the label values API, matched by the series
// selector, over the last hour) and applies its regex: a value is kept,
// or its first group, when the regex matches.
func variableValues(promAddr, q, regex string) ([]string, error) {
	m := labelValuesRE.FindStringSubmatch(q)
	if m == nil {
		return nil, fmt.Errorf("not a label_values query: %s", q)
	}
	now := time.Now()
	params := url.Values{"match[]": {m[1]}, "start": {unix(now.Add(-time.Hour))}, "end": {unix(now)}}
	var vals []string
	if err := promGet(promAddr, "/api/v1/label/"+m[2]+"/values", params, &vals); err != nil {
		return nil, err
	}
	if regex == "" {
		return vals, nil
	}
	re, err := regexp.Compile(strings.TrimSuffix(strings.TrimPrefix(regex, "/"), "/"))
	if err != nil {
		return nil, fmt.Errorf("regex %s: %w", regex, err)
	}
	var out []string
	for _, v := range vals {
		sm := re.FindStringSubmatch(v)
		switch {
		case sm == nil:
			continue
		case len(sm) > 1:
			v = sm[1]
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// runPromQL runs a panel's query as Grafana does: a range query over the
// last two minutes, or an instant one; it must return series.
func runPromQL(promAddr, q string, instant bool) error {
	now := time.Now()
	var res struct {
		Result []json.RawMessage `json:"result"`
	}
	var err error
	if instant {
		err = promGet(promAddr, "/api/v1/query", url.Values{"query": {q}, "time": {unix(now)}}, &res)
	} else {
		err = promGet(promAddr, "/api/v1/query_range", url.Values{"query": {q},
			"start": {unix(now.Add(-2 * time.Minute))}, "end": {unix(now)}, "step": {"5"}}, &res)
	}
	if err != nil {
		return err
	}
	if len(res.Result) == 0 {
		return fmt.Errorf("no data: %s", q)
	}
	return nil
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// promGet calls Prometheus' HTTP API and decodes its data into v.
func promGet(addr, path string, params url.Values, v any) error {
	resp, err := http.Get("http://" + addr + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("prometheus %s: %s: %s", path, body.Status, body.Error)
	}
	return json.Unmarshal(body.Data, v)
}

// runSQL runs a panel's SQL, its macros expanded for the last hour at a
// one-minute interval, through ClickHouse's HTTP interface; it must return
// rows, and a time series must start with a DateTime column.
func runSQL(httpPort int, q query) error {
	now := time.Now()
	sql, err := expandMacros(q.text, now.Add(-time.Hour), now.Add(time.Minute), time.Minute)
	if err != nil {
		return err
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/?database=periscope", httpPort), "text/plain",
		strings.NewReader(sql+"\nFORMAT JSONCompact"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("clickhouse: %s: %s\n%s", resp.Status, bytes.TrimSpace(body), sql)
	}
	var res struct {
		Meta []struct{ Name, Type string } `json:"meta"`
		Rows int                           `json:"rows"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("clickhouse answer: %w", err)
	}
	if res.Rows == 0 {
		return fmt.Errorf("no rows:\n%s", sql)
	}
	if isTimeSeries(q) && (len(res.Meta) == 0 || res.Meta[0].Type != "DateTime") {
		return fmt.Errorf("a time series whose first column is %+v, not a DateTime", res.Meta)
	}
	return nil
}

// isTimeSeries tells a time-series SQL query by its bucketed time column.
func isTimeSeries(q query) bool { return strings.Contains(q.text, "AS time") }
