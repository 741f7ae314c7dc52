package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/relay/hubble"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// The L7 end-to-end test (issue 10's "done when"): a collector with two
// sources, an L3/L4 one and the L7 test source (a proxy's HTTP and DNS
// records), wired as `periscope collector` wires it (the sinks its flags
// open, --clickhouse and --metrics, as one assembly; the web UI; the
// Hubble API), shows the L7 records to every reader: `periscope observe -o
// json` from the ring and from ClickHouse, with and without its L7 filters,
// ClickHouse's L7 columns, the real hubble CLI (`--protocol http` and the
// HTTP filters), /metrics' HTTP golden signals, and the UI's L7 INFO column
// in Chromium.

var (
	e2eFrontend = netip.MustParseAddr("198.18.0.2")
	e2eBackend  = netip.MustParseAddr("198.18.0.3")
	e2eDNS      = netip.MustParseAddr("198.18.0.53")
)

func l7E2ETopology() *collector.Topology {
	ep := func(name, ns, app string, ifindex uint32, ip netip.Addr) collector.ResolvedEndpoint {
		return collector.ResolvedEndpoint{
			Config:      collector.EndpointConfig{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
			HostIfIndex: ifindex, HostIfName: "lxc-" + app, IPs: []netip.Addr{ip},
		}
	}
	return &collector.Topology{NodeName: "node-l7", Endpoints: []collector.ResolvedEndpoint{
		ep("frontend-1", "default", "frontend", 11, e2eFrontend),
		ep("backend-1", "default", "backend", 12, e2eBackend),
		ep("coredns-1", "kube-system", "coredns", 13, e2eDNS),
	}}
}

// l7E2EFlows are what the two sources emit: one L3/L4 flow, and an HTTP
// exchange (PUT, 201), a DNS exchange and another HTTP exchange (GET, 503).
func l7E2EFlows(now time.Time) (l3l4, l7 []api.Flow) {
	f := api.Flow{Time: now.Add(-5 * time.Second), Verdict: api.VerdictForwarded, Type: api.FlowTypeL3L4, Event: api.EventStart,
		IP:        api.IP{Source: e2eFrontend, Destination: e2eBackend, Version: api.IPv4},
		L4:        api.L4{Protocol: api.ProtoTCP, SourcePort: 43210, DestinationPort: 8080, TCPFlags: api.TCPFlagSYN},
		Interface: api.Interface{Index: 11}}
	f.UUID[0] = 0x33
	l7 = apitest.HTTPExchange{Client: netip.AddrPortFrom(e2eFrontend, 43210), Server: netip.AddrPortFrom(e2eBackend, 8080),
		Method: "PUT", URL: "http://backend:8080/applicants/_create/103294", Code: 201, Latency: 12 * time.Millisecond,
		RequestHeaders: []api.HTTPHeader{{Key: "content-type", Value: "application/json"}},
	}.Flows(now.Add(-4 * time.Second))
	l7 = append(l7, apitest.DNSExchange{Client: netip.AddrPortFrom(e2eFrontend, 40000), Server: netip.AddrPortFrom(e2eDNS, 53),
		Query: "example.com.", IPs: []string{"198.18.0.10", "198.18.0.11"}, TTL: 300, Latency: time.Millisecond,
	}.Flows(now.Add(-3*time.Second))...)
	l7 = append(l7, e2eFailingGet(now.Add(-2*time.Second), 43300)...)
	return []api.Flow{f}, l7
}

// e2eFailingGet is an HTTP exchange whose GET the backend answers with 503
// after 30ms, from the frontend's port.
func e2eFailingGet(t time.Time, port uint16) []api.Flow {
	return apitest.HTTPExchange{Client: netip.AddrPortFrom(e2eFrontend, port), Server: netip.AddrPortFrom(e2eBackend, 8080),
		Method: "GET", URL: "http://backend:8080/api/items?page=2", Code: 503, Latency: 30 * time.Millisecond,
		ResponseHeaders: []api.HTTPHeader{{Key: "retry-after", Value: "1"}},
	}.Flows(t)
}

func TestE2EL7RecordsReachEveryReader(t *testing.T) {
	hubbleBin := findHubbleCLI(t)
	uitest.RequireChromium(t)
	srv := chtest.Start(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)

	// The sinks as `periscope collector --clickhouse ... --metrics` opens
	// them.
	var sf sinkFlags
	flags := pflag.NewFlagSet("collector", pflag.ContinueOnError)
	sf.addFlags(flags)
	if err := flags.Parse([]string{"--clickhouse=" + srv.DSN("periscope"), "--clickhouse-spool-dir=" + t.TempDir(),
		"--metrics", "--metrics-options=source_context=pod;destination_context=pod"}); err != nil {
		t.Fatal(err)
	}
	sinks, err := newCollectorSinks(ctx, sf, "node-l7", nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if sinks.history == nil || sinks.handlers["GET /metrics"] == nil {
		t.Fatalf("the sinks opened no ClickHouse history or no /metrics (handlers %v)", sinks.handlers)
	}

	l3l4, l7 := l7E2EFlows(time.Now())
	l7Source := apitest.NewL7Source(l7, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var web uiMount
	t.Cleanup(web.Close)
	sinks.handlers[uiPattern] = &web
	c, err := collector.New(collector.Options{
		Topology: l7E2ETopology(), Listener: ln, Sinks: sinks.sinks, Handlers: sinks.handlers, History: sinks.history,
		Sources: []collector.Source{apitest.NewSource(l3l4, 0), l7Source},
		Logger:  logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := web.start(c, sinks.history, nil, logger); err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", collectorWithSinks{c, sinks})
	addr := c.Addr().String()
	waitUntil(t, "every flow in the ring", func() bool { return c.Store().Seen() == uint64(len(l3l4)+len(l7)) })
	waitUntil(t, "every flow in ClickHouse", func() bool { return srv.Query("SELECT count() FROM periscope.flows") == "7" })

	// What the collector made of the records: enriched, L7 as emitted.
	checkL7 := func(t *testing.T, what string, got []api.Flow) {
		t.Helper()
		var l7Got []api.Flow
		for _, f := range got {
			if f.L7 != nil {
				l7Got = append(l7Got, f)
			}
		}
		if len(l7Got) != len(l7) {
			t.Fatalf("%s: %d L7 flows, want %d", what, len(l7Got), len(l7))
		}
		for i := range l7 {
			g := l7Got[i]
			if !reflect.DeepEqual(g.L7, l7[i].L7) || g.UUID != l7[i].UUID || g.IsReply != l7[i].IsReply ||
				g.TrafficDirection != api.TrafficDirectionEgress || g.NodeName != "node-l7" {
				t.Errorf("%s: L7 flow %d is %+v with %+v, want %+v", what, i, g, g.L7, l7[i].L7)
			}
			if g.Source.PodName == "" || g.Destination.PodName == "" || g.Source.Identity == 0 || g.Destination.Identity == 0 {
				t.Errorf("%s: L7 flow %d not enriched: %+v → %+v", what, i, g.Source, g.Destination)
			}
		}
	}

	for _, source := range []string{"ring", "clickhouse"} {
		t.Run("periscope observe -o json from the "+source, func(t *testing.T) {
			var out bytes.Buffer
			cmd := newRootCmd()
			cmd.SetArgs([]string{"observe", "--server", addr, "--all", "--source", source, "-o", "json"})
			cmd.SetOut(&out)
			if err := cmd.ExecuteContext(ctx); err != nil {
				t.Fatal(err)
			}
			var got []api.Flow
			for line := range strings.Lines(out.String()) {
				var f api.Flow
				if err := api.ParseJSON([]byte(line), &f); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				got = append(got, f)
			}
			checkL7(t, "periscope observe --source "+source, got)
			if !strings.Contains(out.String(), `"l7":{"type":"RESPONSE","latency_ns":"12000000","http":{"code":201,"method":"PUT"`) {
				t.Errorf("the JSON lacks the HTTP response's l7 object:\n%s", out.String())
			}
		})
	}

	t.Run("ClickHouse holds the L7 columns", func(t *testing.T) {
		got := srv.Query("SELECT l7_protocol, l7_type, http_method, http_status, http_path, dns_query, arrayStringConcat(dns_ips, ','), " +
			"arrayStringConcat(http_headers_keys, ',') FROM periscope.flows WHERE l7_protocol != '' ORDER BY time, time_ns FORMAT TSV")
		want := strings.Join([]string{
			"http\t1\tPUT\t0\thttp://backend:8080/applicants/_create/103294\t\t\tcontent-type",
			"http\t2\tPUT\t201\thttp://backend:8080/applicants/_create/103294\t\t\t",
			"dns\t1\t\t0\t\texample.com.\t\t",
			"dns\t2\t\t0\t\texample.com.\t198.18.0.10,198.18.0.11\t",
			"http\t1\tGET\t0\thttp://backend:8080/api/items?page=2\t\t\t",
			"http\t2\tGET\t503\thttp://backend:8080/api/items?page=2\t\t\tretry-after",
		}, "\n")
		if got != want {
			t.Errorf("L7 rows:\n%s\nwant:\n%s", got, want)
		}
	})

	for _, source := range []string{"ring", "clickhouse"} {
		t.Run("periscope observe's L7 filters select from the "+source, func(t *testing.T) {
			checkObserveL7Filters(t, addr, source, l7)
		})
	}

	hubbleAddr := serveHubbleForTest(t, c)
	t.Run("the hubble CLI prints the L7 lines", func(t *testing.T) {
		out := runHubbleCLI(t, hubbleBin, "observe", "--all", "--color", "never", "--server", hubbleAddr)
		for _, want := range []string{
			"default/frontend-1:43210 (ID:", ") -> default/backend-1:8080 (ID:",
			" http-request FORWARDED (HTTP/1.1 PUT http://backend:8080/applicants/_create/103294)",
			") <- default/backend-1:8080 (ID:",
			" http-response FORWARDED (HTTP/1.1 201 12ms (PUT http://backend:8080/applicants/_create/103294))",
			") -> kube-system/coredns-1:53 (ID:",
			" dns-request proxy FORWARDED (DNS Query example.com. A)",
			` dns-response proxy FORWARDED (DNS Answer "198.18.0.10,198.18.0.11" TTL: 300 (Proxy example.com. A))`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("hubble observe lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("hubble observe --protocol http and its HTTP filters", func(t *testing.T) {
		checkHubbleL7Filters(t, hubbleBin, hubbleAddr, l7)
	})

	t.Run("the UI shows the L7 INFO column", func(t *testing.T) {
		bctx := uitest.Browser(t)
		tctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		const cells = `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')]
			.sort((a, b) => a.dataset.index - b.dataset.index).map(r => r.querySelector('.c-l7').textContent)`
		if err := chromedp.Do(tctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(tctx, chromedp.Poll[bool](cells+`.length === 7`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			t.Fatalf("the UI did not show the 7 flows: %v", err)
		}
		got, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](cells))
		if err != nil {
			t.Fatal(err)
		}
		// Newest on top; the L3/L4 flow, of the other source, has an empty
		// cell wherever the two sources' flows met in the pipeline.
		want := []string{"← 503 Service Unavailable 30ms", "→ GET /api/items?page=2",
			"← 198.18.0.10, 198.18.0.11", "? example.com. A", "← 201 Created 12ms", "→ PUT /applicants/_create/103294"}
		if l7Cells := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s == "" }); !slices.Equal(l7Cells, want) || len(got) != 7 {
			t.Errorf("L7 INFO column %q, want %q and one empty cell", got, want)
		}

		// An L7 chip in the page's URL filters the table.
		if err := chromedp.Do(tctx, chromedp.Navigate("http://"+addr+"/?filter="+url.QueryEscape("http-status=5+"))); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(tctx, chromedp.Poll[bool](cells+`.join("|") === "← 503 Service Unavailable 30ms"`,
			chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			got, _ := chromedp.Run(tctx, chromedp.Evaluate[[]string](cells))
			t.Errorf("with the chip http-status=5+ the UI shows %q, want the 503 response alone: %v", got, err)
		}
	})

	// Last: it adds flows the checks above do not expect.
	t.Run("/metrics counts the HTTP responses", func(t *testing.T) {
		checkHTTPMetrics(t, addr, l7Source)
	})
}

// collectorWithSinks runs a collector inside its sinks' run, as `periscope
// collector` does: the sinks drain and close once it has stopped.
type collectorWithSinks struct {
	*collector.Collector
	sinks *collectorSinks
}

// Run runs the collector and the sinks until ctx ends.
func (r collectorWithSinks) Run(ctx context.Context) error {
	return r.sinks.runWith(ctx, r.Collector.Run)
}

// serveHubbleForTest serves c's Hubble API until the test ends and returns
// its address.
func serveHubbleForTest(t *testing.T, c *collector.Collector) string {
	t.Helper()
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- hubble.Serve(sctx, hln, hubble.NewCollectorBackend(c), hubble.Options{Followers: c.Followers()})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("hubble Serve: %v", err)
		}
	})
	return hln.Addr().String()
}

// waitUntil polls cond until it holds or a generous deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findHubbleCLI finds the hubble binary `make test` builds: $PERISCOPE_HUBBLE_CLI,
// else bin/hubble at the module root; without one it skips outside CI and
// fails in CI.
func findHubbleCLI(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PERISCOPE_HUBBLE_CLI")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", "..", "bin", "hubble"))
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		labtest.SkipOrFail(t, fmt.Sprintf("no hubble CLI at %q: build it with `make hubble-cli`", bin))
	}
	return bin
}

// runHubbleCLI runs the hubble CLI, away from the user's hubble config.
func runHubbleCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("hubble %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		t.Fatal(err)
	}
	return stdout.String()
}
