package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/otel/oteltest"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy/envoytest"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// webL7Policy lets peer GET /public/... of web's port 8080; anything else
// gets 403.
const webL7Policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: peer}}]
    toPorts:
    - ports: [{port: '8080', protocol: TCP}]
      rules:
        http:
        - {method: GET, path: '/public/.*'}
`

// TestCollectorL7PolicyEndToEnd runs the built binary with --envoy,
// --metrics, --clickhouse and --otlp-endpoint, and no --proxy-redirect:
// `periscope policy validate` accepts an L7 policy and `policy apply`
// puts web's port 8080 behind Envoy. Real requests from the peer pod then
// show everywhere a flow goes: the golden signals in /metrics and in OTLP
// (403s of the policy and 503s of the server counted by status), periscope
// observe's and the real hubble CLI's HTTP filters, ClickHouse's L7
// columns, and the UI's L7 INFO column; the drops name the policy.
func TestCollectorL7PolicyEndToEnd(t *testing.T) {
	labtest.RequireRoot(t)
	envoyBin := envoytest.Binary(t)
	hubbleBin := findHubbleCLI(t)
	uitest.RequireChromium(t)
	ch := chtest.Start(t)
	otlp, otlpAddr := oteltest.StartGRPC(t)
	dir := t.TempDir()
	bin := periscopetest.Build(t)
	web, peer, cfg := webAndPeer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/error") {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	policyFile := filepath.Join(dir, "web-l7.yaml")
	if err := os.WriteFile(policyFile, []byte(webL7Policy), 0o600); err != nil {
		t.Fatal(err)
	}
	hubbleListen := periscopetest.FreeAddr(t)
	// The policy is applied over its API socket, as an operator on the
	// node does.
	c := periscopetest.StartCollector(t, bin, nil, "--config", cfg, "--hubble-listen", hubbleListen, "--sock-events=false",
		"--envoy", "--envoy-binary", envoyBin, "--envoy-socket", filepath.Join(dir, "envoy.sock"), "--envoy-admin", "127.0.0.1:0",
		"--metrics", "--metrics-options", "source_context=pod;destination_context=pod",
		"--clickhouse", ch.DSN("periscope"), "--clickhouse-spool-dir", filepath.Join(dir, "spool"),
		"--otlp-endpoint", otlpAddr, "--otlp-insecure", "--otlp-export-interval", "500ms")
	listen, socket, base := c.Addr, c.Socket, c.URL

	ctx := context.Background()
	periscope := func(args ...string) (string, error) {
		var b bytes.Buffer
		c := newRootCmd()
		c.SetArgs(args)
		c.SetOut(&b)
		c.SetErr(&b)
		err := c.ExecuteContext(ctx)
		return b.String(), err
	}
	if o, err := periscope("policy", "validate", "-f", policyFile); err != nil {
		t.Fatalf("periscope policy validate: %v\n%s", err, o)
	}
	if o, err := periscope("policy", "apply", "-f", policyFile, "--socket", socket); err != nil {
		t.Fatalf("periscope policy apply: %v\n%s", err, o)
	}

	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return peer.DialTCP(ctx, netip.MustParseAddrPort(addr))
		}}}
	do := func(method, path string) int {
		req, _ := http.NewRequest(method, "http://"+netip.AddrPortFrom(web.IPv4, 8080).String()+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	want := []struct {
		method, path string
		n, status    int
	}{{"GET", "/public/a", 5, 200}, {"GET", "/public/error", 2, 503}, {"GET", "/admin", 3, 403}, {"POST", "/public/a", 1, 403}}
	for _, w := range want {
		for range w.n {
			if got := do(w.method, w.path); got != w.status {
				t.Fatalf("%s %s: %d, want %d", w.method, w.path, got, w.status)
			}
		}
	}
	// 11 requests: as Hubble shows them, a REQUEST record each (DROPPED
	// naming the policy when it denied it) and a RESPONSE record each.
	const total = 11
	var l7 []api.Flow
	waitUntil(t, "the 22 L7 flows", func() bool {
		l7 = slices.DeleteFunc(getFlows(t, base, "protocol=http"), func(f api.Flow) bool { return f.L7 == nil })
		return len(l7) >= 2*total
	})
	if len(l7) != 2*total {
		t.Fatalf("%d L7 flows, want %d", len(l7), 2*total)
	}
	for _, f := range l7 {
		client, server := f.Source.PodName, f.Destination.PodName
		response := f.L7.Type == api.L7TypeResponse
		if response {
			client, server = server, client
		}
		dropped := !response && (f.L7.HTTP.Method == "POST" || strings.HasSuffix(f.L7.HTTP.URL, "/admin"))
		if client != "peer" || server != "web" || f.IsReply != response || f.TrafficDirection != api.TrafficDirectionIngress ||
			dropped != (f.Verdict == api.VerdictDropped) || dropped && !slices.Equal(f.IngressDeniedBy, []api.PolicyRef{{Name: "web-l7", Namespace: "default", Kind: "CiliumNetworkPolicy", Revision: 2}}) {
			t.Errorf("L7 flow %v %s -> %s reply %v %v verdict %v code %d denied by %v", f.L7.Type, f.Source.PodName, f.Destination.PodName,
				f.IsReply, f.TrafficDirection, f.Verdict, f.L7.HTTP.Code, f.IngressDeniedBy)
		}
	}

	exchange := map[string]string{"source": "default/peer", "destination": "default/web", "reporter": "server", "protocol": "HTTP/1.1"}
	t.Run("the golden signals in /metrics", func(t *testing.T) {
		body := scrape(t, listen)
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{metrics.HTTPRequestsTotal, with(exchange, map[string]string{"method": "GET", "status": "200"}), 5},
			{metrics.HTTPRequestsTotal, with(exchange, map[string]string{"method": "GET", "status": "503"}), 2},
			{metrics.HTTPRequestsTotal, with(exchange, map[string]string{"method": "GET", "status": "403"}), 3},
			{metrics.HTTPRequestsTotal, with(exchange, map[string]string{"method": "POST", "status": "403"}), 1},
			{metrics.HTTPRequestDurationSeconds + "_count", map[string]string{"source": "default/peer", "destination": "default/web",
				"reporter": "server", "method": "GET"}, 10},
		} {
			if got, ok := metricValue(body, c.name, c.labels); !ok || got != c.want {
				t.Errorf("%s%v = %v (found %v), want %v\n%s", c.name, c.labels, got, ok, c.want, grepLines(body, "periscope_http_"))
			}
		}
	})

	t.Run("the golden signals over OTLP", func(t *testing.T) {
		waitUntil(t, "OTLP's request count", func() bool {
			ms, _ := otlp.LastMetrics(t)
			m := ms[metrics.OTelHTTPRequests]
			return m != nil && oteltest.Total(m) == total
		})
		ms, _ := otlp.LastMetrics(t)
		forbidden := int64(0)
		for attrs, v := range oteltest.Points(ms[metrics.OTelHTTPRequests]) {
			if strings.Contains(attrs, "http.response.status_code=403") {
				forbidden += v
			}
		}
		if forbidden != 4 {
			t.Errorf("OTLP counts %d requests answered 403, want 4: %v", forbidden, oteltest.Points(ms[metrics.OTelHTTPRequests]))
		}
		var n uint64
		for _, dp := range ms[metrics.OTelHTTPServerRequestDuration].GetHistogram().GetDataPoints() {
			n += dp.GetCount()
		}
		if n != total {
			t.Errorf("%s counts %d requests, want %d", metrics.OTelHTTPServerRequestDuration, n, total)
		}
	})

	filters := []string{"--protocol", "http", "--http-status", "5+", "--http-method", "GET", "--http-path", "^/public/"}
	for _, source := range []string{"ring", "clickhouse"} {
		t.Run("periscope observe's HTTP filters from the "+source, func(t *testing.T) {
			if source == "clickhouse" {
				waitUntil(t, "the L7 rows in ClickHouse", func() bool {
					return ch.Query("SELECT count() FROM periscope.flows WHERE l7_protocol = 'http'") == "22"
				})
			}
			o, err := periscope(append([]string{"observe", "--server", listen, "--all", "--source", source, "-o", "json"}, filters...)...)
			if err != nil {
				t.Fatalf("periscope observe: %v\n%s", err, o)
			}
			if n := len(strings.Split(strings.TrimSpace(o), "\n")); n != 2 || !strings.Contains(o, `"code":503`) {
				t.Errorf("periscope observe %s printed %d records, want the two 503s:\n%s", strings.Join(filters, " "), n, o)
			}
			o, err = periscope("observe", "--server", listen, "--all", "--source", source, "--protocol", "http", "--verdict", "DROPPED")
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(o, "http-request DROPPED"); n != 4 {
				t.Errorf("periscope observe --verdict DROPPED printed %d drops, want 4:\n%s", n, o)
			}
		})
	}

	t.Run("the real hubble CLI with the same filters", func(t *testing.T) {
		o := runHubbleCLI(t, hubbleBin, append([]string{"observe", "--all", "--color", "never", "--server", hubbleListen}, filters...)...)
		if n := strings.Count(o, "http-response FORWARDED (HTTP/1.1 503"); n != 2 || len(strings.Split(strings.TrimSpace(o), "\n")) != 2 {
			t.Errorf("hubble observe %s:\n%s\nwant the two 503s", strings.Join(filters, " "), o)
		}
		o = runHubbleCLI(t, hubbleBin, "observe", "--all", "--color", "never", "--server", hubbleListen, "--protocol", "http", "--verdict", "DROPPED")
		if n := strings.Count(o, "http-request DROPPED (HTTP/1.1 "); n != 4 || len(strings.Split(strings.TrimSpace(o), "\n")) != 4 {
			t.Errorf("hubble observe --verdict DROPPED printed %d request drops, want 4 and nothing else:\n%s", n, o)
		}
	})

	t.Run("ClickHouse is queryable by method, status, path and latency", func(t *testing.T) {
		waitUntil(t, "the L7 rows in ClickHouse", func() bool {
			return ch.Query("SELECT count() FROM periscope.flows WHERE l7_protocol = 'http'") == "22"
		})
		for q, want := range map[string]string{
			"SELECT count() FROM periscope.flows WHERE http_method = 'GET' AND http_path LIKE '%/admin' AND verdict = 2": "3",
			"SELECT count() FROM periscope.flows WHERE http_method = 'GET' AND http_status = 403":                        "3",
			"SELECT count() FROM periscope.flows WHERE http_status = 503 AND http_path LIKE '%/public/error'":            "2",
			"SELECT count() FROM periscope.flows WHERE http_status = 200 AND l7_latency_ns > 0":                          "5",
			"SELECT count() FROM periscope.flows WHERE http_method = 'POST'":                                             "2",
		} {
			if got := ch.Query(q); got != want {
				t.Errorf("%s: %s, want %s", q, got, want)
			}
		}
	})

	t.Run("the UI's L7 INFO column shows Envoy's records", func(t *testing.T) {
		bctx := uitest.Browser(t)
		tctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		const cells = `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')].map(r => r.querySelector('.c-l7').textContent)`
		// The table is virtualized: a page tall enough to show the 11 rows
		// of the responses.
		if err := chromedp.Do(tctx, chromedp.EmulateViewport(1400, 1600), chromedp.Navigate(base+"/?filter=protocol%3Dhttp&filter=reply%3Dtrue")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(tctx, chromedp.Poll[bool](cells+`.length === 11`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			got, _ := chromedp.Run(bctx, chromedp.Evaluate[[]string](cells))
			t.Fatalf("the UI shows %q, want 11 L7 rows: %v", got, err)
		}
		got, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](cells))
		if err != nil {
			t.Fatal(err)
		}
		count := func(prefix string) (n int) {
			for _, c := range got {
				if strings.HasPrefix(c, prefix) {
					n++
				}
			}
			return n
		}
		if count("← 200 OK") != 5 || count("← 403 Forbidden") != 4 || count("← 503 Service Unavailable") != 2 {
			t.Errorf("L7 INFO column %q, want 5 × 200 OK, 4 × 403 Forbidden, 2 × 503", got)
		}
	})
}
