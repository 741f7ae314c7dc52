package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/collector/collectortest"
)

// startAPINode runs a collector with the policy API behind the access
// model: token on TCP ("" for none), and the API socket; it returns the
// TCP address and the socket's path.
func startAPINode(t *testing.T, token string) (addr, socket string) {
	t.Helper()
	g := collectortest.StartGuarded(t, token, nil)
	return g.Collector.Addr().String(), g.Socket
}

// periscope runs one CLI command and returns what it printed.
func periscope(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

const cliPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{fromEntities: [world]}]
`

// periscope policy makes changes over the API socket by default, and over
// TCP only with the token; reads work either way.
func TestThePolicyCLIGoesThroughTheSocketOrWithTheToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "web.yaml")
	writeFile(t, file, cliPolicy)

	addr, socket := startAPINode(t, "s3cret")
	if out, err := periscope(t, "policy", "apply", "-f", file, "--socket", socket); err != nil || !strings.Contains(out, "default/web applied") {
		t.Fatalf("apply over the socket: %v: %s", err, out)
	}
	if out, err := periscope(t, "policy", "list", "--socket", socket); err != nil || !strings.Contains(out, "web") {
		t.Errorf("list over the socket: %v: %s", err, out)
	}
	_, err := periscope(t, "policy", "delete", "web", "--server", addr, "--socket", socket)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("delete over TCP without the token: %v, want 401", err)
	}
	t.Setenv(envAPIToken, "s3cret")
	if out, err := periscope(t, "policy", "delete", "web", "--server", addr); err != nil || !strings.Contains(out, "deleted") {
		t.Errorf("delete over TCP with the token from the environment: %v: %s", err, out)
	}
	if out, err := periscope(t, "observe", "--server", addr, "--last", "1"); err != nil {
		t.Errorf("observe over TCP with the token: %v: %s", err, out)
	}

	addr, _ = startAPINode(t, "")
	t.Setenv(envAPIToken, "")
	_, err = periscope(t, "policy", "apply", "-f", file, "--server", addr)
	if err == nil || !strings.Contains(err.Error(), "--api-socket") {
		t.Errorf("apply over TCP to a collector without a token: %v, want a refusal pointing at the socket", err)
	}
	// No socket to use: the CLI falls back to TCP, where reads are open.
	if out, err := periscope(t, "observe", "--server", addr, "--last", "1", "--socket", filepath.Join(t.TempDir(), "none.sock")); err != nil {
		t.Errorf("observe over TCP: %v: %s", err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
