package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy/envoytest"
)

// isDBClients says whether a deciding policy is the demo's policy.
func isDBClients(p api.PolicyRef) bool {
	return p.Name == "db-clients" && p.Namespace == "default" && p.Kind == "CiliumNetworkPolicy" && p.Revision > 0
}

// isBackendL7 says whether a deciding policy is the demo's L7 rule's.
func isBackendL7(p api.PolicyRef) bool {
	return p.Name == "backend-l7" && p.Namespace == "default" && p.Kind == "CiliumNetworkPolicy" && p.Revision > 0
}

// isFrontendEgress says whether a deciding policy is the demo's frontend
// egress policy.
func isFrontendEgress(p api.PolicyRef) bool {
	return p.Name == "frontend-egress" && p.Namespace == "default" && p.Kind == "CiliumNetworkPolicy"
}

// TestDemoShowsEveryKindOfFlowWithVerdictsAndCleansUp runs `periscope demo`
// as `sudo make demo` does (its own ports and pin path) and checks what a
// newcomer is promised: flows of every traffic kind named by pod, the demo
// policy's verdicts (allowed flows name it, the outsider's attempts on db
// are DROPPED), the backend's L7 records through Envoy (GET /public/...
// answered with latencies, other requests 403 DROPPED naming the L7
// rule's policy), the web UI, the policy API and Hubble's port; and that
// Ctrl-C leaves no namespace, link or pinned map behind.
func TestDemoShowsEveryKindOfFlowWithVerdictsAndCleansUp(t *testing.T) {
	labtest.RequireRoot(t)
	envoyBin := envoytest.Binary(t)
	opts := demoOptions{
		listen:      periscopetest.FreeAddr(t),
		hubble:      periscopetest.FreeAddr(t),
		socket:      filepath.Join(t.TempDir(), "collector.sock"),
		pinPath:     netlab.PinPath(t, "demo-test"),
		envoy:       true,
		envoyBinary: envoyBin,
	}
	var out, errOut periscopetest.Output
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- runDemo(ctx, opts, &out, &errOut); close(exited) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("demo did not stop 30s after Ctrl-C")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	base := "http://" + opts.listen
	periscopetest.WaitHealthy(t, "the demo", base, exited, &errOut)

	type want struct {
		name string
		ok   func(f *api.Flow) bool
	}
	pods := func(f *api.Flow, src, dst string) bool {
		return f.Source.Namespace+"/"+f.Source.PodName == src && f.Destination.Namespace+"/"+f.Destination.PodName == dst
	}
	wants := []want{
		{"frontend -> backend:8080 over IPv4 and IPv6, forwarded", func(f *api.Flow) bool {
			return pods(f, "default/frontend", "default/backend") && f.L4.DestinationPort == 8080 && f.IP.Version == api.IPv6 &&
				f.Verdict == api.VerdictForwarded
		}},
		{"backend -> db:5432 allowed by default/db-clients", func(f *api.Flow) bool {
			return pods(f, "default/backend", "default/db") && f.L4.DestinationPort == 5432 &&
				f.Verdict == api.VerdictForwarded && slices.ContainsFunc(f.IngressAllowedBy, isDBClients)
		}},
		{"frontend -> db:5353/UDP allowed by default/db-clients", func(f *api.Flow) bool {
			return pods(f, "default/frontend", "default/db") && f.L4.Protocol == api.ProtoUDP &&
				f.Verdict == api.VerdictForwarded && slices.ContainsFunc(f.IngressAllowedBy, isDBClients)
		}},
		{"outsider -> db:5432 dropped, no allow matched", func(f *api.Flow) bool {
			return pods(f, "other/outsider", "default/db") && f.Verdict == api.VerdictDropped &&
				f.DropReason == api.DropReasonPolicyDenied
		}},
		{"outsider pings frontend", func(f *api.Flow) bool {
			return pods(f, "other/outsider", "default/frontend") && f.L4.Protocol == api.ProtoICMPv4
		}},
		{"backend answers frontend's GET /public/... through Envoy, with its latency", func(f *api.Flow) bool {
			return f.L7 != nil && f.L7.HTTP != nil && pods(f, "default/backend", "default/frontend") && f.IsReply &&
				f.L7.HTTP.Method == "GET" && f.L7.HTTP.Code == 200 && strings.Contains(f.L7.HTTP.URL, "/public/") &&
				f.L7.LatencyNs > 0 && f.Verdict == api.VerdictForwarded
		}},
		{"frontend's POST /admin/users is an http-request DROPPED by default/backend-l7", func(f *api.Flow) bool {
			return f.L7 != nil && f.L7.HTTP != nil && pods(f, "default/frontend", "default/backend") && !f.IsReply &&
				f.L7.Type == api.L7TypeRequest && f.L7.HTTP.Method == "POST" && f.Verdict == api.VerdictDropped &&
				slices.ContainsFunc(f.IngressDeniedBy, isBackendL7)
		}},
		{"and its answer is a 403", func(f *api.Flow) bool {
			return f.L7 != nil && f.L7.HTTP != nil && pods(f, "default/backend", "default/frontend") && f.IsReply &&
				f.L7.HTTP.Method == "POST" && f.L7.HTTP.Code == 403
		}},
		{"frontend looks api.partner.example up through the DNS proxy, allowed by default/frontend-egress", func(f *api.Flow) bool {
			return f.Source.PodName == "frontend" && f.L7 != nil && f.L7.DNS != nil && f.L7.DNS.Query == demoPartnerName+"." &&
				f.Verdict == api.VerdictForwarded && slices.ContainsFunc(f.EgressAllowedBy, isFrontendEgress)
		}},
		{"frontend -> api.partner.example:443 allowed by name (toFQDNs)", func(f *api.Flow) bool {
			return f.Source.PodName == "frontend" && f.Type == api.FlowTypeL3L4 && f.L4.DestinationPort == 443 &&
				slices.Contains(f.DestinationNames, demoPartnerName) && f.Verdict == api.VerdictForwarded &&
				slices.ContainsFunc(f.EgressAllowedBy, isFrontendEgress)
		}},
		{"frontend -> ads.tracker.example:443 dropped, the name shown", func(f *api.Flow) bool {
			return f.Source.PodName == "frontend" && f.Type == api.FlowTypeL3L4 && f.L4.DestinationPort == 443 &&
				slices.Contains(f.DestinationNames, demoTrackerName) && f.Verdict == api.VerdictDropped &&
				f.DropReason == api.DropReasonPolicyDenied
		}},
	}
	var flows []api.Flow
	for deadline := time.Now().Add(20 * time.Second); ; {
		flows = getFlows(t, base)
		var missing []string
		for _, w := range wants {
			if !slices.ContainsFunc(flows, func(f api.Flow) bool { return w.ok(&f) }) {
				missing = append(missing, w.name)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s, %d flows but none for: %q\ndemo output:\n%s", len(flows), missing, errOut.String())
		}
		time.Sleep(250 * time.Millisecond)
	}

	for _, path := range []string{"/", "/api/v1/policies", "/api/v1/identities"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		if path == "/api/v1/policies" && (!strings.Contains(string(body), "db-clients") || !strings.Contains(string(body), "backend-l7")) {
			t.Errorf("GET %s lacks the demo policy: %s", path, body)
		}
	}
	if c, err := net.DialTimeout("tcp", opts.hubble, 2*time.Second); err != nil {
		t.Errorf("Hubble API on %s: %v", opts.hubble, err)
	} else {
		c.Close()
	}
	if banner := errOut.String(); !strings.Contains(banner, "Web UI: http://"+opts.listen+"/") {
		t.Errorf("the demo did not print its UI address; output:\n%s", banner)
	}

	m := regexp.MustCompile(`lab (\w+): bridge`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no lab line in the demo's output:\n%s", errOut.String())
	}
	prefix := netlab.NamePrefix + m[1] + "-"
	if err := stop(); err != nil {
		t.Fatalf("demo: %v", err)
	}
	if ns, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(ns), prefix) {
		t.Errorf("namespaces %s* left after the demo stopped:\n%s", prefix, ns)
	}
	if links, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Contains(string(links), prefix) {
		t.Errorf("links %s* left after the demo stopped", prefix)
	}
	if _, err := os.Stat(opts.pinPath); !os.IsNotExist(err) {
		t.Errorf("pin path %s left after the demo stopped (stat: %v)", opts.pinPath, err)
	}
}
