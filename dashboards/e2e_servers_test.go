package dashboards

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
)

// The servers of TestEveryQueryReturnsData: the collector binary with its
// policies, and Prometheus.

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

// startCollector runs `periscope collector` over the lab's pods (frontend
// in audit mode), with metrics (workload contexts), ClickHouse and Envoy in
// front of backend's port 8080, until the test ends, and returns it once it
// answers. Changes go over its API socket: a collector without an API
// token takes them there only.
func startCollector(t *testing.T, bin, envoyBin string, lab *netlab.Lab, dsn string) *periscopetest.Server {
	t.Helper()
	cfg := collector.Config{NodeName: "dashboards-test"}
	for _, p := range lab.Pods() {
		ep := periscopetest.PodEndpoint(p)
		ep.Audit = p.Name == "frontend"
		cfg.Endpoints = append(cfg.Endpoints, ep)
	}
	return periscopetest.StartCollector(t, bin, nil, "--config", periscopetest.EndpointsFile(t, cfg), "--hubble-listen", "",
		"--ui=false", "--sock-events=false",
		"--report-interval", "2s", "--idle-timeout", "3s", "--close-grace", "1s",
		"--metrics", "--metrics-options", "source_context=workload;destination_context=workload",
		"--clickhouse", dsn,
		"--envoy", "--envoy-binary", envoyBin, "--envoy-socket", filepath.Join(t.TempDir(), "envoy.sock"),
		"--envoy-admin", "127.0.0.1:0", "--proxy-redirect", "backend:8080")
}

// applyPolicy posts policies to the collector's policy API.
func applyPolicy(t *testing.T, c *periscopetest.Server, yamlDocs string) {
	t.Helper()
	resp, err := c.SocketClient().Post("http://localhost/api/v1/policies", "application/yaml", strings.NewReader(yamlDocs))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("apply policies: %s: %s", resp.Status, body)
	}
}

func deletePolicy(t *testing.T, c *periscopetest.Server, nsName string) {
	req, _ := http.NewRequest(http.MethodDelete, "http://localhost/api/v1/policies/"+nsName, nil)
	resp, err := c.SocketClient().Do(req)
	if err != nil {
		t.Errorf("delete policy %s: %v", nsName, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("delete policy %s: %s", nsName, resp.Status)
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
	addr := periscopetest.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	var out periscopetest.Output
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
