package sinks

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/otel/oteltest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clearOTLPEnv keeps the developer's OTEL_* variables out of a test.
func clearOTLPEnv(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
		"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

// parse registers the set's flags of scope and parses args.
func parse(t *testing.T, scope sink.FlagScope, args ...string) (*Set, *pflag.FlagSet) {
	t.Helper()
	set := New()
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	set.AddFlags(f, scope)
	if err := f.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return set, f
}

// httpResponse is the L7 record of a server's 200 to a GET from a client
// pod, reported by the server's side.
func httpResponse() *api.Flow {
	return &api.Flow{
		Time: time.Now(), Type: api.FlowTypeL7, Verdict: api.VerdictForwarded,
		TrafficDirection: api.TrafficDirectionIngress, IsReply: true,
		IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.1"), Version: api.IPv4},
		L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 80, DestinationPort: 40000},
		// The response goes from the server to the client.
		Source:      api.Endpoint{Namespace: "b", Workload: "server", PodName: "server-1"},
		Destination: api.Endpoint{Namespace: "a", Workload: "client", PodName: "client-1"},
		L7: &api.L7{Type: api.L7TypeResponse, LatencyNs: uint64(4 * time.Millisecond),
			HTTP: &api.HTTP{Code: 200, Method: "GET", URL: "http://server/", Protocol: "HTTP/1.1"}},
	}
}

func TestAnHTTPResponseMovesTheGoldenSignalsInPrometheusAndOTLP(t *testing.T) {
	clearOTLPEnv(t)
	r, addr := oteltest.StartGRPC(t)
	set, _ := parse(t, sink.AllFlags, "--metrics", "--otlp-endpoint="+addr, "--otlp-insecure", "--otlp-export-interval=1h",
		"--metrics-options=source_context=workload;destination_context=pod-name")
	ctx := context.Background()
	a, err := set.Open(ctx, sink.Env{NodeName: "node-1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	stop := a.Start(ctx)
	a.Consume(httpResponse())

	rec := httptest.NewRecorder()
	a.Handlers()["GET /metrics"].ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := metrics.HTTPRequestsTotal + `{destination="server-1",method="GET",protocol="HTTP/1.1",reporter="server",source="a/client",status="200"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics has no %s\n%s", want, rec.Body)
	}

	if err := stop(); err != nil { // OTLP's last export
		t.Fatal(err)
	}
	ms, _ := r.LastMetrics(t)
	reqs, ok := ms[metrics.OTelHTTPRequests]
	if !ok {
		t.Fatalf("OTLP export has no %s", metrics.OTelHTTPRequests)
	}
	wantPoint := "http.request.method=GET,http.response.status_code=200,network.protocol.version=1.1," +
		"periscope.destination=server-1,periscope.reporter=server,periscope.source=a/client"
	if got := oteltest.Points(reqs); got[wantPoint] != 1 || oteltest.Total(reqs) != 1 {
		t.Errorf("%s points %v, want 1 at %s", metrics.OTelHTTPRequests, got, wantPoint)
	}
	if _, ok := ms[metrics.OTelHTTPServerRequestDuration]; !ok {
		t.Errorf("OTLP export has no %s", metrics.OTelHTTPServerRequestDuration)
	}
	if recs, _ := r.LogRecords(); len(recs) != 1 {
		t.Errorf("%d OTLP log records, want the one flow's", len(recs))
	}
	if set.ClickHouse() != nil {
		t.Error("a ClickHouse store without --clickhouse")
	}
}

func TestEachCommandGetsTheFlagsOfItsScope(t *testing.T) {
	names := func(f *pflag.FlagSet) []string {
		var out []string
		f.VisitAll(func(fl *pflag.Flag) { out = append(out, fl.Name) })
		return out
	}
	_, all := parse(t, sink.AllFlags)
	wantAll := []string{"clickhouse", "clickhouse-ca", "clickhouse-dsn", "clickhouse-max-queries", "clickhouse-password-file",
		"clickhouse-query-timeout", "clickhouse-retention", "clickhouse-spool-dir", "clickhouse-spool-max-bytes",
		"clickhouse-tls", "metrics", "metrics-options",
		"otlp-endpoint", "otlp-export-interval", "otlp-insecure", "otlp-protocol"}
	if got := names(all); !slices.Equal(got, wantAll) {
		t.Errorf("all flags %q, want %q", got, wantAll)
	}
	_, enabling := parse(t, sink.EnablingFlags)
	if got, want := names(enabling), []string{"clickhouse", "clickhouse-dsn", "metrics"}; !slices.Equal(got, want) {
		t.Errorf("enabling flags %q, want %q", got, want)
	}
}

func TestNoFlagsOpenNothingAndBadOptionsFailEvenSo(t *testing.T) {
	clearOTLPEnv(t)
	set, _ := parse(t, sink.AllFlags)
	a, err := set.Open(context.Background(), sink.Env{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Queues()) != 0 || len(a.Handlers()) != 0 {
		t.Errorf("no flags opened %d queues and handlers %v", len(a.Queues()), a.Handlers())
	}
	a.Consume(httpResponse()) // goes nowhere
	if err := a.Close(); err != nil {
		t.Error(err)
	}
	set, _ = parse(t, sink.AllFlags, "--metrics-options=source_context=ip")
	if _, err := set.Open(context.Background(), sink.Env{Logger: quietLogger()}); err == nil || !strings.HasPrefix(err.Error(), "--metrics-options: ") {
		t.Errorf("Open with a bad --metrics-options returned %v", err)
	}
}
