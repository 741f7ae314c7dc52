package otel

import (
	"context"
	"maps"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
)

// newManualMetrics returns Metrics on a meter provider read by hand.
func newManualMetrics(t *testing.T, o metrics.Options) (*metrics.Metrics, func() map[string]map[string]int64) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { mp.Shutdown(context.Background()) }) //nolint:errcheck
	m, err := NewMetrics(mp, o)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	collect := func() map[string]map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := rd.Collect(context.Background(), &rm); err != nil {
			t.Fatalf("collect: %v", err)
		}
		out := map[string]map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, md := range sm.Metrics {
				pts := map[string]int64{}
				switch d := md.Data.(type) {
				case metricdata.Sum[int64]:
					for _, dp := range d.DataPoints {
						pts[setString(dp.Attributes)] += dp.Value
					}
				case metricdata.Gauge[int64]:
					for _, dp := range d.DataPoints {
						pts[setString(dp.Attributes)] += dp.Value
					}
				case metricdata.Histogram[float64]:
					for _, dp := range d.DataPoints {
						pts[setString(dp.Attributes)] += int64(dp.Count)
					}
				}
				out[md.Name] = pts
			}
		}
		return out
	}
	return m, collect
}

func setString(s attribute.Set) string {
	out := ""
	for i, kv := range s.ToSlice() {
		if i > 0 {
			out += ","
		}
		out += string(kv.Key) + "=" + kv.Value.Emit()
	}
	return out
}

// tcpConn is a TCP flow record from (ns "a") port sport to (ns "b") port 80.
func tcpConn(sport uint16, ev api.EventKind, c api.Counters) *api.Flow {
	return &api.Flow{
		Event: ev, Verdict: api.VerdictForwarded, Type: api.FlowTypeL3L4,
		TrafficDirection: api.TrafficDirectionEgress,
		IP:               api.IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"), Version: api.IPv4},
		L4:               api.L4{Protocol: api.ProtoTCP, SourcePort: sport, DestinationPort: 80},
		Source:           api.Endpoint{Namespace: "a", Workload: "client", PodName: "client-1", Identity: 100},
		Destination:      api.Endpoint{Namespace: "b", Workload: "server", PodName: "server-1", Identity: 200},
		Interface:        api.Interface{Index: 1},
		Counters:         c,
	}
}

func TestCumulativeCountersAreCountedOnceAsDeltas(t *testing.T) {
	m, collect := newManualMetrics(t, metrics.Options{
		SourceContext:      []metrics.Context{metrics.ContextWorkload},
		DestinationContext: []metrics.Context{metrics.ContextPodName},
	})
	for _, f := range []*api.Flow{
		tcpConn(1000, api.EventStart, api.Counters{PacketsForward: 1, BytesForward: 60}),
		tcpConn(1000, api.EventState, api.Counters{PacketsForward: 1, BytesForward: 60, PacketsReply: 1, BytesReply: 60}),
		tcpConn(1000, api.EventPeriodic, api.Counters{PacketsForward: 5, BytesForward: 300, PacketsReply: 4, BytesReply: 1000}),
		tcpConn(1000, api.EventEnd, api.Counters{PacketsForward: 6, BytesForward: 360, PacketsReply: 5, BytesReply: 1060}),
		{Event: api.EventSock, Type: api.FlowTypeSock, L4: api.L4{Protocol: api.ProtoTCP}},
	} {
		m.Consume(f)
	}
	got := collect()
	wantBytes := map[string]int64{
		"periscope.destination=server-1,periscope.source=a/client": 360,
		"periscope.destination=client-1,periscope.source=b/server": 1060,
	}
	for k, v := range wantBytes {
		if got["periscope.bytes"][k] != v {
			t.Errorf("periscope.bytes = %v, want %v", got["periscope.bytes"], wantBytes)
			break
		}
	}
	if n := got["periscope.flows"]; len(n) != 1 {
		t.Errorf("periscope.flows = %v, want one series counting the one start record", n)
	}
	if n := got["periscope.traffic.tracked_connections"][""]; n != 0 {
		t.Errorf("tracked connections = %d after the end record, want 0", n)
	}
}

func TestSeriesBeyondTheCapGoToTheOverflowSeries(t *testing.T) {
	m, collect := newManualMetrics(t, metrics.Options{MaxSeries: 2, SourceContext: []metrics.Context{metrics.ContextIdentity}})
	for i := range 5 {
		f := tcpConn(uint16(1000+i), api.EventStart, api.Counters{PacketsForward: 1, BytesForward: 10})
		f.Source.Identity, f.Source.Labels = uint32(100+i), []string{"k8s:app=c" + strconv.Itoa(i)}
		m.Consume(f)
		r := httpResponse([]string{"GET", "POST", "PUT", "BREW", "DELETE"}[i], uint32(200+i), time.Millisecond, api.TrafficDirectionEgress)
		r.Destination.Labels = []string{"k8s:app=client"}
		m.Consume(r)
	}
	got := collect()
	bytes := got["periscope.bytes"]
	if len(bytes) != 3 || bytes["otel.metric.overflow=true"] != 30 {
		t.Errorf("periscope.bytes = %v, want 2 series and 30 bytes in the overflow one", bytes)
	}
	var sum int64
	for _, v := range bytes {
		sum += v
	}
	if sum != 50 {
		t.Errorf("periscope.bytes sums to %d, want every byte counted: 50", sum)
	}
	reqs := got["periscope.http.requests"]
	get := "http.request.method=GET,http.response.status_code=200,network.protocol.version=1.1," +
		"periscope.destination=b,periscope.reporter=client,periscope.source=k8s:app=client"
	if reqs[get] != 1 || reqs["otel.metric.overflow=true"] != 3 {
		t.Errorf("periscope.http.requests = %v", reqs)
	}
}

// httpResponse is an L7 record of the response to a method request from
// (ns "a") to (ns "b"), reported by the client's side (EGRESS) or the
// server's (INGRESS): it goes from b to a.
func httpResponse(method string, code uint32, latency time.Duration, dir api.TrafficDirection) *api.Flow {
	f := tcpConn(80, api.EventUnknown, api.Counters{})
	f.Type, f.TrafficDirection, f.IsReply = api.FlowTypeL7, dir, true
	f.Source, f.Destination = f.Destination, f.Source
	f.L7 = &api.L7{Type: api.L7TypeResponse, LatencyNs: uint64(latency),
		HTTP: &api.HTTP{Code: code, Method: method, URL: "http://server/", Protocol: "HTTP/1.1"}}
	return f
}

func TestHTTPDurationsFollowTheSemanticConventions(t *testing.T) {
	m, collect := newManualMetrics(t, metrics.Options{})
	m.Consume(httpResponse("GET", 200, 10*time.Millisecond, api.TrafficDirectionIngress))
	m.Consume(httpResponse("GET", 200, 30*time.Millisecond, api.TrafficDirectionIngress))
	m.Consume(httpResponse("PATCH", 404, time.Millisecond, api.TrafficDirectionEgress))
	m.Consume(httpResponse("BREW", 0, time.Millisecond, api.TrafficDirectionUnknown))
	got := collect()
	want := map[string]map[string]int64{ // histogram sample counts
		httpconv.ServerRequestDuration{}.Name(): {
			"http.request.method=GET,http.response.status_code=200,network.protocol.version=1.1,periscope.destination=b,periscope.source=a": 2,
		},
		httpconv.ClientRequestDuration{}.Name(): {
			"http.request.method=PATCH,http.response.status_code=404,network.protocol.version=1.1,periscope.destination=b,periscope.source=a": 1,
		},
		// Neither client nor server: Periscope's own instrument; an unknown
		// method is _OTHER, an unknown status left out.
		metrics.OTelHTTPRequestDuration: {
			"http.request.method=_OTHER,network.protocol.version=1.1,periscope.destination=b,periscope.source=a": 1,
		},
		metrics.OTelHTTPRequests: {
			"http.request.method=GET,http.response.status_code=200,network.protocol.version=1.1,periscope.destination=b,periscope.reporter=server,periscope.source=a":   2,
			"http.request.method=PATCH,http.response.status_code=404,network.protocol.version=1.1,periscope.destination=b,periscope.reporter=client,periscope.source=a": 1,
			"http.request.method=_OTHER,network.protocol.version=1.1,periscope.destination=b,periscope.reporter=unknown,periscope.source=a":                             1,
		},
	}
	for name, w := range want {
		if !maps.Equal(got[name], w) {
			t.Errorf("%s = %v\nwant %v", name, got[name], w)
		}
	}
}

func TestPolicyVerdictsFollowThePrometheusRules(t *testing.T) {
	m, collect := newManualMetrics(t, metrics.Options{})
	f := tcpConn(1, api.EventStart, api.Counters{PacketsForward: 1, BytesForward: 60})
	f.Verdict, f.DropReason = api.VerdictDropped, api.DropReasonPolicyDeny
	f.IngressDeniedBy, f.EgressAllowedBy = []api.PolicyRef{{Name: "deny-b"}}, []api.PolicyRef{{Name: "allow-a"}}
	m.Consume(f)
	g := tcpConn(2, api.EventStart, api.Counters{PacketsForward: 1, BytesForward: 60})
	g.Verdict, g.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
	m.Consume(g)
	want := map[string]int64{
		"periscope.policy.match=deny,periscope.traffic_direction=INGRESS,periscope.verdict=DROPPED":   1,
		"periscope.policy.match=allow,periscope.traffic_direction=EGRESS,periscope.verdict=DROPPED":   1,
		"periscope.policy.match=default,periscope.traffic_direction=EGRESS,periscope.verdict=DROPPED": 1,
	}
	got := collect()["periscope.policy.verdicts"]
	if len(got) != len(want) {
		t.Fatalf("policy verdicts = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("policy verdicts = %v, want %v", got, want)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		name, in string
		want     endpoint
		wantErr  bool
	}{
		{name: "empty leaves the environment in charge", in: "", want: endpoint{}},
		{name: "host and port keep TLS", in: "collector:4317", want: endpoint{set: true, host: "collector:4317"}},
		{name: "an http URL means no TLS", in: "http://collector:4318/", want: endpoint{set: true, host: "collector:4318", insecure: true}},
		{name: "a URL's path is the base of the signal paths", in: "https://gw/otlp", want: endpoint{set: true, host: "gw", path: "/otlp"}},
		{name: "other schemes are refused", in: "ftp://x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEndpoint(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseEndpoint(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestProtocolComesFromTheFlagThenTheSignalsVariableThenTheGeneralOne(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "")
	if p, _ := (Options{}).protocol("METRICS"); p != ProtocolHTTPProtobuf {
		t.Errorf("metrics protocol %q, want the general variable's", p)
	}
	if p, _ := (Options{}).protocol("LOGS"); p != ProtocolGRPC {
		t.Errorf("logs protocol %q, want the signal's variable", p)
	}
	if p, _ := (Options{Protocol: ProtocolHTTPProtobuf}).protocol("LOGS"); p != ProtocolHTTPProtobuf {
		t.Errorf("logs protocol %q, want the option's", p)
	}
	if _, err := (Options{Protocol: "http/json"}).protocol("LOGS"); err == nil {
		t.Error("http/json accepted")
	}
}

func TestUUIDString(t *testing.T) {
	u := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	if got, want := uuidString(&u), "12345678-9abc-def0-0102-030405060708"; got != want {
		t.Errorf("uuidString = %s, want %s", got, want)
	}
}
