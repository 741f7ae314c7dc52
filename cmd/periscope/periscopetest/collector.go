package periscopetest

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
)

// StartCollector is Start of `periscope collector` with CollectorFlags
// before args.
func StartCollector(t *testing.T, bin string, env []string, args ...string) *Server {
	t.Helper()
	return Start(t, bin, "collector", env, append(CollectorFlags(t), args...)...)
}

// CollectorFlags are the flags that keep a collector's kernel and disk
// state the test's own: --bpf-pin-path PinPath and StateFlags.
func CollectorFlags(t *testing.T) []string {
	t.Helper()
	return append([]string{"--bpf-pin-path", PinPath(t)}, StateFlags(t)...)
}

// PinPath is a BPF pin path no other test uses, removed when the test
// ends.
func PinPath(tb testing.TB) string {
	return netlab.PinPath(tb, "test")
}

// StateFlags keep a collector's identity, policy and endpoint state in the
// test's temporary directory, never in the machine's /var/lib/periscope:
// an endpoint state left there would be kept by the next collector.
func StateFlags(tb testing.TB) []string {
	dir := tb.TempDir()
	return []string{"--identity-state", filepath.Join(dir, "ids.json"), "--policy-dir", filepath.Join(dir, "policies"),
		"--endpoint-state", filepath.Join(dir, "endpoints.json")}
}

// PodEndpoint declares a lab pod as an endpoint: its name, namespace,
// labels, network namespace, host veth and both addresses.
func PodEndpoint(p *netlab.Pod) collector.EndpointConfig {
	return collector.EndpointConfig{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, NetNS: p.NetNSPath,
		Interface: p.HostVeth.Name, IPs: []string{p.IPv4.String(), p.IPv6.String()}}
}

// EndpointsFile writes cfg as an endpoints file (--config) in the test's
// temporary directory and returns its path.
func EndpointsFile(t *testing.T, cfg collector.Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("encode endpoints file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("write endpoints file: %v", err)
	}
	return path
}
