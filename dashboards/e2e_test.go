package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	promexp "github.com/periscope-dev/periscope/collector/sink/metrics/prom"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestEveryQueryReturnsData runs the collector (the real binary, the real
// datapath) over netlab pods with real traffic and two policies (one
// endpoint in audit mode), storing into a real ClickHouse and scraped by a
// real Prometheus, and runs every query of every dashboard the way Grafana
// would: variables first (label_values through Prometheus' label API, their
// regex applied), then each panel's PromQL through the query API and each
// panel's SQL, its macros expanded as the ClickHouse plugin expands them,
// through ClickHouse's HTTP interface. Every one must answer without error
// and with data; a renamed metric, label or column fails it.
//
// HTTP golden signals come from L7 records, which no flow source of the
// collector produces yet (Envoy's access logs are to): until then a second
// scrape target serves the metric model fed with HTTP responses between the
// lab's workloads.
func TestEveryQueryReturnsData(t *testing.T) {
	labtest.RequireRoot(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		labtest.SkipOrFail(t, "prometheus not installed (apt-get install prometheus)")
	}
	if testing.Short() {
		t.Skip("starts a lab, a collector, ClickHouse and Prometheus: skipped with -short only")
	}
	ch := chtest.Start(t)
	bin := buildPeriscope(t)
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
	collectorAddr := startCollector(t, bin, lab, ch.DSN("periscope"))
	applyPolicy(t, collectorAddr, testPolicies)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	fe, be, db, out := pods["frontend"], pods["backend"], pods["db"], pods["outsider"]
	wg.Go(func() {
		_ = netlab.RunTraffic(ctx, netlab.TrafficOptions{},
			netlab.Traffic{Kind: netlab.Requests, From: fe, To: be, Port: 8080, Every: 200 * time.Millisecond},
			netlab.Traffic{Kind: netlab.Requests, From: fe, To: be, Port: 8080, IPv6: true, Every: time.Second},
			netlab.Traffic{Kind: netlab.Stream, From: be, To: db, Port: 5432, Every: time.Second},
			netlab.Traffic{Kind: netlab.Datagrams, From: fe, To: db, Port: 53, Every: time.Second},
			netlab.Traffic{Kind: netlab.Requests, From: fe, To: db, Port: 5432, Every: time.Second},  // denied by a rule
			netlab.Traffic{Kind: netlab.Requests, From: out, To: db, Port: 5432, Every: time.Second}, // denied by default
			netlab.Traffic{Kind: netlab.Requests, From: out, To: fe, Port: 8080, Every: time.Second}, // audited
			netlab.Traffic{Kind: netlab.Echo, From: out, To: fe, Every: time.Second},
		)
	})
	l7Addr := serveHTTPSignals(t, ctx, &wg)
	promAddr := startPrometheus(t, promBin, collectorAddr, l7Addr)

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
		deletePolicy(t, collectorAddr, p)
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

// buildPeriscope builds the binary the way make build does.
func buildPeriscope(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "periscope")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/periscope-dev/periscope/cmd/periscope")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// testPolicies: db takes 5432 from backend and 53/UDP from frontend, and
// denies 5432 to frontend by a rule (the outsider is denied by default);
// frontend takes 8080 from backend only, but it is in audit mode, so the
// outsider's requests are audited.
const testPolicies = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db-clients, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: backend}}]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-guard, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: backend}}]
`

// startCollector runs `periscope collector` over the lab's pods, with
// metrics (workload contexts) and ClickHouse, until the test ends, and
// returns its API's address once it answers.
func startCollector(t *testing.T, bin string, lab *netlab.Lab, dsn string) string {
	t.Helper()
	dir := t.TempDir()
	type endpoint struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
		NetNS     string            `yaml:"netns"`
		Interface string            `yaml:"interface"`
		IPs       []string          `yaml:"ips"`
		Audit     bool              `yaml:"audit,omitempty"`
	}
	var cfg struct {
		NodeName  string     `yaml:"node_name"`
		Endpoints []endpoint `yaml:"endpoints"`
	}
	cfg.NodeName = "dashboards-test"
	for _, p := range lab.Pods() {
		cfg.Endpoints = append(cfg.Endpoints, endpoint{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels,
			NetNS: p.NetNSPath, Interface: p.HostVeth.Name, IPs: []string{p.IPv4.String(), p.IPv6.String()},
			Audit: p.Name == "frontend"})
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "endpoints.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	pins := "/sys/fs/bpf/periscope-dash-" + lab.ID
	cmd := exec.Command(bin, "collector", "--config", cfgPath, "--listen", addr, "--hubble-listen", "",
		"--ui=false", "--sock-events=false", "--bpf-pin-path", pins,
		"--identity-state", filepath.Join(dir, "identities.json"), "--policy-dir", filepath.Join(dir, "policies"),
		"--report-interval", "2s", "--idle-timeout", "3s", "--close-grace", "1s",
		"--metrics", "--metrics-options", "source_context=workload;destination_context=workload",
		"--clickhouse", dsn)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("collector output:\n%s", out.String())
		}
		os.RemoveAll(pins)
	})
	waitFor(t, 60*time.Second, "the collector to answer", func() bool {
		select {
		case <-exited:
			t.Fatalf("the collector exited:\n%s", out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return addr
}

// applyPolicy posts policies to the collector's policy API.
func applyPolicy(t *testing.T, addr, yamlDocs string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/api/v1/policies", "application/yaml", strings.NewReader(yamlDocs))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("apply policies: %s: %s", resp.Status, body)
	}
}

func deletePolicy(t *testing.T, addr, nsName string) {
	req, _ := http.NewRequest(http.MethodDelete, "http://"+addr+"/api/v1/policies/"+nsName, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("delete policy %s: %v", nsName, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("delete policy %s: %s", nsName, resp.Status)
	}
}

// serveHTTPSignals serves, until ctx ends, the metric model (workload
// contexts) fed with HTTP responses from backend to frontend every 100ms:
// mostly 200s, some 503s, reported by the server side and the client side.
func serveHTTPSignals(t *testing.T, ctx context.Context, wg *sync.WaitGroup) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := promexp.NewMetrics(reg, metrics.Options{
		SourceContext:      []metrics.Context{metrics.ContextWorkload},
		DestinationContext: []metrics.Context{metrics.ContextWorkload},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promexp.Handler(reg, nil)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			status := uint32(200)
			if i%5 == 0 {
				status = 503
			}
			dir := api.TrafficDirectionIngress
			if i%2 == 0 {
				dir = api.TrafficDirectionEgress
			}
			m.Consume(httpResponse(status, time.Duration(1+i%40)*time.Millisecond, dir))
		}
	})
	return ln.Addr().String()
}

// httpResponse is the L7 record of backend's response to frontend.
func httpResponse(status uint32, latency time.Duration, dir api.TrafficDirection) *api.Flow {
	backend := api.Endpoint{Namespace: "default", Workload: "backend", PodName: "backend"}
	frontend := api.Endpoint{Namespace: "default", Workload: "frontend", PodName: "frontend"}
	return &api.Flow{
		Verdict: api.VerdictForwarded, Type: api.FlowTypeL7, TrafficDirection: dir, IsReply: true,
		IP:     api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.1"), Version: api.IPv4},
		L4:     api.L4{Protocol: api.ProtoTCP, SourcePort: 8080, DestinationPort: 40000},
		Source: backend, Destination: frontend,
		L7: &api.L7{Type: api.L7TypeResponse, LatencyNs: uint64(latency),
			HTTP: &api.HTTP{Code: status, Method: "GET", URL: "http://backend/api/v1/items", Protocol: "HTTP/1.1"}},
	}
}

// startPrometheus runs a Prometheus server scraping targets every second
// until the test ends and returns its address.
func startPrometheus(t *testing.T, bin string, targets ...string) string {
	t.Helper()
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for i, target := range targets {
		fmt.Fprintf(&cfg, "  - job_name: periscope-%d\n    static_configs:\n      - targets: [%q]\n", i, target)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	waitFor(t, 60*time.Second, "prometheus to answer", func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return addr
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
