package hubble

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
)

// l7VerdictFlows: frontend's exchanges with backend as Hubble shows them
// (Documentation/observability/hubble/hubble-cli.rst): a forwarded GET and
// its 503, a PUT the L7 policy denied (an http-request DROPPED naming the
// policy, no response), a DELETE audit mode let through, and a DNS query
// the DNS proxy refused.
func l7VerdictFlows() []api.Flow {
	t := time.Now().Add(-time.Minute)
	fe, be := netip.AddrPortFrom(ipFrontend, 40300), netip.AddrPortFrom(ipBackend, 8080)
	ex := func(method, path string, code uint32, at time.Duration) []api.Flow {
		return apitest.HTTPExchange{Client: fe, Server: be, Method: method, URL: "http://backend-5c:8080" + path,
			Code: code, Latency: 3 * time.Millisecond}.Flows(t.Add(at))
	}
	policy := []api.PolicyRef{{Name: "get-only", Namespace: "shop", Kind: "CiliumNetworkPolicy", Revision: 3}}
	flows := ex("GET", "/public/a", 503, 0)
	denied := ex("PUT", "/admin", 403, time.Second)[0]
	denied.Verdict, denied.DropReason, denied.EgressDeniedBy = api.VerdictDropped, api.DropReasonPolicyDenied, policy
	audited := ex("DELETE", "/admin", 204, 2*time.Second)
	audited[0].Verdict, audited[0].DropReason, audited[0].EgressDeniedBy = api.VerdictAudit, api.DropReasonPolicyDenied, policy
	refused := apitest.DNSExchange{Client: netip.AddrPortFrom(ipFrontend, 40301), Server: netip.AddrPortFrom(ipDB, 53),
		Query: "ads.example.net."}.Flows(t.Add(3 * time.Second))[0]
	refused.Verdict, refused.DropReason, refused.EgressDeniedBy = api.VerdictDropped, api.DropReasonPolicyDenied, policy
	return append(append(append(flows, denied), audited...), refused)
}

// The real hubble CLI sees L7 verdicts as Hubble's would: L7 records are
// L7 events (129) whatever their verdict, never drop events, and carry no
// drop reason; its printers show them as Hubble's docs do.
func TestHubbleCLIShowsL7VerdictsAsHubbleDoes(t *testing.T) {
	h := newHubbleCLI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l7 := l7VerdictFlows()
	c, err := collector.New(collector.Options{Topology: topology("node1"), Listener: ln, Version: "test",
		Sources: []collector.Source{apitest.NewL7Source(l7, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "node1", c)
	waitFor(t, "every flow stored", func() bool { return c.Store().Seen() == uint64(len(l7)) })
	h.server = serveAddr(t, NewCollectorBackend(c))

	// l7: 0 GET, 1 its 503, 2 PUT denied, 3 DELETE audited, 4 its 204, 5 DNS refused.
	for _, tt := range []struct {
		name    string
		filters []string
		want    []int
	}{
		{"l7 and DROPPED: the denied request and query", []string{"--type", "l7", "--verdict", "DROPPED"}, []int{2, 5}},
		{"AUDIT: the audited request", []string{"--verdict", "AUDIT"}, []int{3}},
		{"a 5xx status", []string{"--http-status", "5+"}, []int{1}},
		{"a 50x status", []string{"--http-status", "503"}, []int{1}},
		{"a method and a path", []string{"--http-method", "PUT", "--http-path", "/admin"}, []int{2}},
		{"a URL", []string{"--http-url", `http://backend-5c:8080/admin`}, []int{2, 3, 4}},
		{"DNS", []string{"--protocol", "dns"}, []int{5}},
		{"the drop event type holds no L7 record", []string{"--type", "drop"}, nil},
		{"nor does a drop reason", []string{"--drop-reason-desc", "POLICY_DENIED"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) { checkCLIL7Selection(t, h, l7, tt.filters, tt.want) })
	}

	t.Run("the JSON: event type 129, no drop reason, the denying policy", func(t *testing.T) {
		resps := parseFlowsJSON(t, h.mustRun(t, "observe", "--all", "-o", "json", "--type", "l7"))
		if len(resps) != len(l7) {
			t.Fatalf("%d L7 flows printed, want %d", len(resps), len(l7))
		}
		for _, r := range resps {
			f := r.GetFlow()
			if f.GetEventType().GetType() != monitorL7 || f.GetDropReason() != 0 || f.GetDropReasonDesc() != 0 {
				t.Errorf("%s: event type %v, drop reason %d %v; want type 129 and none", f.GetSummary(), f.GetEventType(), f.GetDropReason(), f.GetDropReasonDesc())
			}
			if f.GetVerdict().String() == "DROPPED" && (len(f.GetEgressDeniedBy()) != 1 || f.GetEgressDeniedBy()[0].GetName() != "get-only") {
				t.Errorf("%s: denied by %v, want get-only", f.GetSummary(), f.GetEgressDeniedBy())
			}
		}
	})
	t.Run("the compact printer", func(t *testing.T) {
		out := h.mustRun(t, "observe", "--all", "--type", "l7", "--color", "never", "-o", "compact")
		for _, want := range []string{
			") -> shop/backend-5c:8080 (ID:", " http-request DROPPED (HTTP/1.1 PUT http://backend-5c:8080/admin)",
			" http-request AUDIT (HTTP/1.1 DELETE http://backend-5c:8080/admin)",
			") <- shop/backend-5c:8080 (ID:", " http-response FORWARDED (HTTP/1.1 503 3ms (GET http://backend-5c:8080/public/a))",
			" dns-request proxy DROPPED (DNS Query ads.example.net. A)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("compact output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("the table printer", func(t *testing.T) {
		out := h.mustRun(t, "observe", "--all", "--type", "l7", "--verdict", "DROPPED", "--color", "never", "-o", "table")
		lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(out), "\n"), func(s string) bool { return strings.TrimSpace(s) == "" })
		if len(lines) != 3 || !strings.Contains(lines[0], "SUMMARY") {
			t.Fatalf("want a header and two rows:\n%s", out)
		}
		for _, want := range []string{"http-request", "DROPPED", "HTTP/1.1 PUT http://backend-5c:8080/admin", "dns-request", "DNS Query ads.example.net. A"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
	})
}
