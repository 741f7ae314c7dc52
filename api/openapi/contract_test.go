package openapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/periscope-dev/periscope/api/openapi"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestServersKeepTheContract runs the collector (the real binary over lab
// pods with traffic, metrics, the web UI and ClickHouse) and a relay over
// it, and checks both against the document: the routes each serves (its
// status lists them) are the operations the document says it serves, and
// the answers to requests of every operation validate against the
// document (NDJSON flows line by line). Then schemathesis fuzzes both
// servers from the document: no server error, no answer outside it.
func TestServersKeepTheContract(t *testing.T) {
	labtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("starts a lab, a collector, a relay and ClickHouse: skipped with -short only (CI runs without -short, so there it always runs)")
	}
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	ch := chtest.Start(t)
	bin := periscopetest.Build(t)
	lab := labtest.NewLab(t)
	a, err := lab.AddPod(netlab.PodSpec{Name: "client", Namespace: "default", Labels: map[string]string{"app": "client"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddPod(netlab.PodSpec{Name: "server", Namespace: "default", Labels: map[string]string{"app": "server"}})
	if err != nil {
		t.Fatal(err)
	}
	// spare is an endpoint the requests remove.
	if _, err := lab.AddPod(netlab.PodSpec{Name: "spare", Namespace: "default", Labels: map[string]string{"app": "spare"}}); err != nil {
		t.Fatal(err)
	}
	collector := startCollector(t, bin, lab, ch.DSN("periscope"))
	relay := startServer(t, bin, "relay", "--peers", collector, "--hubble-listen", "", "--history")
	tctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		_ = netlab.RunTraffic(tctx, netlab.TrafficOptions{},
			netlab.Traffic{Kind: netlab.Requests, From: a, To: b, Port: 8080, Every: 200 * time.Millisecond})
	})
	waitFor(t, 30*time.Second, "flows in the collector's ring", func() bool {
		_, body := get(t, "http://"+collector+"/api/v1/flows?last=1")
		return len(body) > 0
	})

	doc.Servers = openapi3.Servers{{URL: "http://" + collector}, {URL: "http://" + relay}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	openapi3filter.RegisterBodyDecoder("text/html", plainText)
	for _, srv := range []struct{ name, addr string }{{openapi.Collector, collector}, {openapi.Relay, relay}} {
		t.Run(srv.name, func(t *testing.T) {
			checkRoutes(t, srv.name, srv.addr)
			for _, rq := range requests(srv.name) {
				checkAnswer(t, router, srv.addr, rq)
			}
		})
	}
	deleteAllPolicies(t, collector)
	st := schemathesis(t)
	for _, srv := range []struct{ name, addr string }{{openapi.Collector, collector}, {openapi.Relay, relay}} {
		t.Run("schemathesis/"+srv.name, func(t *testing.T) { runSchemathesis(t, st, srv.addr) })
	}
	deleteAllPolicies(t, collector)
}

// checkRoutes compares the routes the server's status lists with the
// document's operations for it.
func checkRoutes(t *testing.T, server, addr string) {
	code, body := get(t, "http://"+addr+"/api/v1/status")
	var st struct {
		Routes []string `json:"routes"`
	}
	if err := json.Unmarshal(body, &st); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %v", code, err)
	}
	want, err := openapi.Routes(server)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Routes {
		if !slices.Contains(want, r) {
			t.Errorf("the %s serves %q, which the document does not describe", server, r)
		}
	}
	for _, r := range want {
		if !slices.Contains(st.Routes, r) {
			t.Errorf("the document says the %s serves %q; it does not", server, r)
		}
	}
}

// request is one request to check, with the status it must get. It
// carries the API token and, with a body, declares YAML, unless header
// says otherwise (an empty value removes a header) or noToken.
type request struct {
	method, path, body string
	status             int
	header             map[string]string
	noToken            bool
}

// requests are requests of every operation the server serves.
func requests(server string) []request {
	rs := []request{
		{"GET", "/healthz", "", 200, nil, false},
		{"GET", "/api/v1/status", "", 200, nil, false},
		{"GET", "/api/v1/openapi.json", "", 200, nil, false},
		{"GET", "/api/v1/openapi.yaml", "", 200, nil, false},
		{"GET", "/", "", 200, nil, false},
		{"GET", "/api/v1/ws", "", 400, nil, false}, // not an Upgrade
		{"GET", "/api/v1/flows", "", 200, nil, false},
		{"GET", "/api/v1/flows?last=5", "", 200, nil, false},
		{"GET", "/api/v1/flows?first=3", "", 200, nil, false},
		{"GET", "/api/v1/flows?all", "", 200, nil, false},
		{"GET", "/api/v1/flows?since=10m&until=1s&filter=protocol%3Dtcp&filter=!verdict%3DDROPPED", "", 200, nil, false},
		{"GET", "/api/v1/flows?source=clickhouse&since=1h", "", 200, nil, false},
		{"GET", "/api/v1/flows?last=0", "", 400, nil, false},
		{"GET", "/api/v1/flows?last=2&first=2", "", 400, nil, false},
		{"GET", "/api/v1/flows?filter=colour%3Dblue", "", 400, nil, false},
		{"GET", "/api/v1/flows?source=clickhouse&follow", "", 400, nil, false},
		{"GET", "/api/v1/namespaces", "", 200, nil, false},
		{"GET", "/api/v1/agent-events", "", 200, nil, false},
		{"GET", "/api/v1/agent-events?all", "", 200, nil, false},
		{"GET", "/api/v1/agent-events?since=1h&last=5", "", 200, nil, false},
		{"GET", "/api/v1/agent-events?last=2&first=2", "", 400, nil, false},
		// The access model's answers.
		{"GET", "/healthz", "", 200, nil, true},
		{"GET", "/", "", 200, nil, true},
		{"GET", "/api/v1/status", "", 401, nil, true},
		{"GET", "/api/v1/flows?last=1", "", 401, map[string]string{"Authorization": "Bearer wrong"}, false},
		{"GET", "/api/v1/flows?last=1", "", 403, map[string]string{"Origin": "http://evil.example"}, false},
		{"GET", "/api/v1/status", "", 403, map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"GET", "/api/v1/namespaces", "", 403, map[string]string{"Host": "rebound.example"}, false},
	}
	if server == openapi.Collector {
		rs = append(rs,
			request{"GET", "/metrics", "", 200, nil, false},
			request{"GET", "/api/v1/identities", "", 200, nil, false},
			request{"GET", "/api/v1/policies", "", 200, nil, false},
			request{"POST", "/api/v1/policies?file=allow.yaml", allowPolicy, 401, nil, true},
			request{"POST", "/api/v1/policies?file=allow.yaml", allowPolicy, 415, map[string]string{"Content-Type": "text/plain"}, false},
			request{"POST", "/api/v1/policies?file=allow.yaml", allowPolicy, 403, map[string]string{"Origin": "http://evil.example"}, false},
			request{"POST", "/api/v1/policies?file=allow.yaml", allowPolicy, 200, nil, false},
			request{"POST", "/api/v1/policies", "kind: Nonsense\n", 400, nil, false},
			request{"GET", "/api/v1/policies/default/allow-client", "", 200, nil, false},
			request{"GET", "/api/v1/policies/default/nothing", "", 404, nil, false},
			request{"DELETE", "/api/v1/policies/default/allow-client", "", 401, nil, true},
			request{"DELETE", "/api/v1/policies/default/allow-client", "", 200, nil, false},
			request{"DELETE", "/api/v1/policies/default/allow-client", "", 404, nil, false},
			request{"GET", "/api/v1/endpoints", "", 200, nil, false},
			request{"DELETE", "/api/v1/endpoints/default/spare", "", 401, nil, true},
			request{"DELETE", "/api/v1/endpoints/default/spare", "", 200, nil, false},
			request{"DELETE", "/api/v1/endpoints/default/spare", "", 404, nil, false},
		)
	}
	return rs
}

const allowPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-client, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
`

// checkAnswer sends rq and validates the answer against the document:
// its status, content type and body (an NDJSON body line by line).
func checkAnswer(t *testing.T, router routers.Router, addr string, rq request) {
	t.Helper()
	where := rq.method + " " + rq.path
	req, err := http.NewRequest(rq.method, "http://"+addr+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.body != "" {
		req.Header.Set("Content-Type", "application/yaml")
	}
	if !rq.noToken {
		req.Header.Set("Authorization", "Bearer "+apiToken)
	}
	for k, v := range rq.header {
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s: not in the document: %v", where, err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != rq.status {
		t.Errorf("%s: status %d, want %d: %s", where, resp.StatusCode, rq.status, firstLine(body))
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		checkLines(t, where, route, resp.StatusCode, body)
		in.Options.ExcludeResponseBody = true
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s: the answer breaks the document: %v", where, err)
	}
}

// checkLines validates every line of an NDJSON answer against the
// document's schema of the response's content.
func checkLines(t *testing.T, where string, route *routers.Route, status int, body []byte) {
	t.Helper()
	r := route.Operation.Responses.Status(status)
	if r == nil || r.Value == nil || r.Value.Content.Get("application/x-ndjson") == nil {
		t.Errorf("%s: the document has no NDJSON answer for %d", where, status)
		return
	}
	schema := r.Value.Content.Get("application/x-ndjson").Schema.Value
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var line any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("%s: line %d is not JSON: %v", where, n, err)
			return
		}
		if err := schema.VisitJSON(line); err != nil {
			t.Errorf("%s: line %d breaks the document: %v\n%s", where, n, err, sc.Bytes())
			return
		}
	}
}

// plainText decodes a body as the string it is (YAML documents, HTML).
func plainText(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}

func deleteAllPolicies(t *testing.T, addr string) {
	t.Helper()
	_, body := get(t, "http://"+addr+"/api/v1/policies")
	var ps []struct{ Kind, Namespace, Name string }
	if err := json.Unmarshal(body, &ps); err != nil {
		t.Errorf("list policies: %v", err)
		return
	}
	for _, p := range ps {
		ns := p.Namespace
		if ns == "" {
			ns = "-"
		}
		req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s/api/v1/policies/%s/%s?kind=%s", addr, ns, p.Name, p.Kind), nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// schemathesis finds the schemathesis that scripts/deps.sh installs
// ($PERISCOPE_SCHEMATHESIS, else bin/venv under the module root); without
// it the test skips outside CI and fails in CI.
func schemathesis(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PERISCOPE_SCHEMATHESIS")
	if path == "" {
		path = filepath.Join("..", "..", "bin", "venv", "bin", "schemathesis")
	}
	if _, err := os.Stat(path); err != nil {
		labtest.SkipOrFail(t, "schemathesis not installed (scripts/deps.sh installs it into bin/venv): "+err.Error())
	}
	abs, err := filepath.Abs(path) // it runs in a directory of its own
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// runSchemathesis fuzzes the server at addr from the document it serves:
// every operation, with the checks that mean a server error or an answer
// the document does not describe, with the API token. The hooks keep
// follow off (a follow never ends; the Go test checks it).
func runSchemathesis(t *testing.T, bin, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "http://"+addr+"/api/v1/openapi.json",
		"--url", "http://"+addr, "--header", "Authorization: Bearer "+apiToken,
		"--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
		"--max-examples", "30", "--workers", "1", "--request-timeout", "10",
		"--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all", "--no-color")
	hooks, err := filepath.Abs("testdata/schemathesis_hooks.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=schemathesis_hooks", "PYTHONPATH="+filepath.Dir(hooks))
	cmd.Dir = t.TempDir() // its cache of failures
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("schemathesis found problems (%v):\n%s", err, out)
		return
	}
	t.Logf("schemathesis:\n%s", lastLines(out, 8))
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
