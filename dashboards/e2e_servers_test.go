package dashboards

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"gopkg.in/yaml.v3"
)

// The servers of TestEveryQueryReturnsData: the collector binary with its
// policies, and Prometheus.

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

// collectorAPI is how the test reaches a collector's API: its TCP address
// (reads: Prometheus scrapes it) and a client of its local API socket
// (changes, which a collector without an API token takes over the socket
// only).
type collectorAPI struct {
	addr   string
	socket *http.Client
}

// startCollector runs `periscope collector` over the lab's pods, with
// metrics (workload contexts), ClickHouse and Envoy in front of backend's
// port 8080, until the test ends, and returns its API once it answers.
func startCollector(t *testing.T, bin, envoyBin string, lab *netlab.Lab, dsn string) collectorAPI {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "periscope-dash-") // short: a Unix socket's path is bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "collector.sock")
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
	cmd := exec.Command(bin, "collector", "--config", cfgPath, "--listen", addr, "--api-socket", socket, "--hubble-listen", "",
		"--ui=false", "--sock-events=false", "--bpf-pin-path", pins,
		"--identity-state", filepath.Join(dir, "identities.json"), "--policy-dir", filepath.Join(dir, "policies"),
		"--endpoint-state", filepath.Join(dir, "endpoints.json"),
		"--report-interval", "2s", "--idle-timeout", "3s", "--close-grace", "1s",
		"--metrics", "--metrics-options", "source_context=workload;destination_context=workload",
		"--clickhouse", dsn,
		"--envoy", "--envoy-binary", envoyBin, "--envoy-socket", filepath.Join(dir, "envoy.sock"),
		"--envoy-admin", "127.0.0.1:0", "--proxy-redirect", "backend:8080")
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
	return collectorAPI{addr: addr, socket: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}}
}

// applyPolicy posts policies to the collector's policy API.
func applyPolicy(t *testing.T, c collectorAPI, yamlDocs string) {
	t.Helper()
	resp, err := c.socket.Post("http://localhost/api/v1/policies", "application/yaml", strings.NewReader(yamlDocs))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("apply policies: %s: %s", resp.Status, body)
	}
}

func deletePolicy(t *testing.T, c collectorAPI, nsName string) {
	req, _ := http.NewRequest(http.MethodDelete, "http://localhost/api/v1/policies/"+nsName, nil)
	resp, err := c.socket.Do(req)
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
