package openapi_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/periscope-dev/periscope/datapath/netlab"
)

// The binaries under test: built, run until the test ends, asked.

// apiToken is the servers' API token (--api-token), which every call of
// the test sends but those that check its absence.
const apiToken = "contract-test-token"

// get calls url with the API token.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// buildPeriscope builds the binary the way make build does.
func buildPeriscope(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "periscope")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/periscope-dev/periscope/cmd/periscope").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startCollector runs `periscope collector` over the lab's pods with
// metrics, the web UI and ClickHouse until the test ends.
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
	}
	var cfg struct {
		Endpoints []endpoint `yaml:"endpoints"`
	}
	for _, p := range lab.Pods() {
		cfg.Endpoints = append(cfg.Endpoints, endpoint{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels,
			NetNS: p.NetNSPath, Interface: p.HostVeth.Name, IPs: []string{p.IPv4.String(), p.IPv6.String()}})
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "endpoints.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pins := "/sys/fs/bpf/periscope-api-" + lab.ID
	t.Cleanup(func() { os.RemoveAll(pins) })
	return startServer(t, bin, "collector", "--config", cfgPath, "--hubble-listen", "", "--sock-events=false",
		"--bpf-pin-path", pins, "--identity-state", filepath.Join(dir, "identities.json"),
		"--policy-dir", filepath.Join(dir, "policies"), "--endpoint-state", filepath.Join(dir, "endpoints.json"),
		"--metrics", "--clickhouse", dsn)
}

// startServer runs `periscope <command> --listen <free address> args...`
// with the API token apiToken (a relay's peers' too) and an API socket of
// its own until the test ends (stopped with SIGTERM) and returns its
// address once /healthz answers.
func startServer(t *testing.T, bin, command string, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	args = append([]string{command, "--listen", addr, "--api-socket", socketPath(t, command)}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PERISCOPE_API_TOKEN="+apiToken, "PERISCOPE_PEER_TOKEN="+apiToken)
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
			t.Logf("%s output:\n%s", command, out.String())
		}
	})
	waitFor(t, 60*time.Second, command+" to answer", func() bool {
		select {
		case <-exited:
			t.Fatalf("%s exited:\n%s", command, out.String())
		default:
		}
		code, _ := get(t, "http://"+addr+"/healthz")
		return code == http.StatusOK
	})
	return addr
}

// socketPath is a path for a server's API socket, short enough for a Unix
// socket's address whatever the test's name, removed when the test ends.
func socketPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "periscope-api-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name+".sock")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
