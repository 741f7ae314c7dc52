package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// acceptingApplier takes every compiled policy set, as a kernel would.
type acceptingApplier struct{}

func (acceptingApplier) ApplyPolicy(*compile.Compiled) error { return nil }
func (acceptingApplier) SetPolicyAudit(uint32, bool) error   { return nil }

// policyServer serves the policy API of a store over a one-endpoint node.
func policyServer(t *testing.T) string {
	t.Helper()
	reg, err := collector.NewRegistry(&collector.Topology{NodeName: "n", Endpoints: []collector.ResolvedEndpoint{{
		Config:      collector.EndpointConfig{Name: "web-1", Labels: map[string]string{"app": "web"}},
		HostIfIndex: 7, HostIfName: "veth-web", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.7")},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := policystore.New(policystore.Options{Applier: acceptingApplier{}, Endpoints: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, h := range store.Handlers() {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestThePolicyCommandsDriveACollectorsPolicyAPI(t *testing.T) {
	server := policyServer(t)
	dir := t.TempDir()
	const web = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web, namespace: default}\n" +
		"spec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress: [{fromEntities: [world]}]\n"
	good := filepath.Join(dir, "web.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(web), 0o600); err != nil {
		t.Fatal(err)
	}
	mixed := filepath.Join(dir, "mixed.yaml")
	if err := os.WriteFile(mixed, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n"+web), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(web+"---\n"+strings.Replace(web, "world", "nowhere", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		name    string
		args    []string
		want    string // in the output, or in the error when wantErr
		wantErr bool
	}{
		{"validate accepts a good file", []string{"policy", "validate", "-f", good}, "valid\n", false},
		{"validate names file:line:column", []string{"policy", "validate", "-f", bad}, bad + ":13:29: fromEntities: entity \"nowhere\"", true},
		{"apply reports the revision", []string{"policy", "apply", "-f", good}, "CiliumNetworkPolicy default/web applied (revision 2)\n", false},
		{"apply of a file with other objects notes them", []string{"policy", "apply", "-f", mixed},
			mixed + ":1:1: skipped Service \"web\" (v1): not a network policy", false},
		{"validate notes them too", []string{"policy", "validate", "-f", mixed},
			mixed + ":1:1: skipped Service \"web\" (v1): not a network policy", false},
		{"list shows the policy", []string{"policy", "list"}, "CiliumNetworkPolicy  default    web   3\n", false},
		{"get prints its YAML", []string{"policy", "get", "web"}, web, false},
		{"identity list shows reserved and endpoint identities", []string{"identity", "list"},
			"k8s:app=web,k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default,k8s:io.cilium.k8s.policy.cluster=default,k8s:io.kubernetes.pod.namespace=default\n", false},
		{"delete by name", []string{"policy", "delete", "web"}, "default/web deleted\n", false},
		{"delete of a policy not applied says so", []string{"policy", "delete", "web"},
			"delete default/web: the collector at " + server + " refused (404 Not Found): policy not found", true},
		{"get of a policy not applied says so", []string{"policy", "get", "web"}, "refused (404 Not Found): policy not found", true},
	} {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		args := st.args
		if args[1] != "validate" {
			args = append(append([]string(nil), args...), "--server", server)
		}
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		switch {
		case st.wantErr && (err == nil || !strings.Contains(err.Error()+errOut.String(), st.want)):
			t.Errorf("%s: error %v, stderr %q; want one containing %q", st.name, err, errOut.String(), st.want)
		case !st.wantErr && (err != nil || !strings.Contains(out.String()+errOut.String(), st.want)):
			t.Errorf("%s: %v, output\n%s\nwant it to contain\n%s", st.name, err, out.String(), st.want)
		}
	}
}
