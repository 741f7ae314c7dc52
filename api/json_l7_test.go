package api_test

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/periscope-dev/periscope/api"
)

// The L7 wire form is checked against Hubble's own types and protojson,
// the library `hubble observe -o json` prints with: each case is an L7
// record and the flow.Layer7 Hubble would have for it.
var l7ProtojsonCases = []struct {
	name string
	l7   *api.L7
	pb   *flowpb.Layer7
}{
	{"an HTTP request with headers",
		&api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: "GET", URL: "http://backend:8080/a?b=\"c\"&d=é", Protocol: "HTTP/1.1",
			Headers: []api.HTTPHeader{{Key: "accept", Value: "*/*"}, {Key: "x-empty"}}}},
		&flowpb.Layer7{Type: flowpb.L7FlowType_REQUEST, Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{Method: "GET",
			Url: "http://backend:8080/a?b=\"c\"&d=é", Protocol: "HTTP/1.1",
			Headers: []*flowpb.HTTPHeader{{Key: "accept", Value: "*/*"}, {Key: "x-empty"}}}}}},
	{"an HTTP response with a latency beyond 2^53 ns",
		&api.L7{Type: api.L7TypeResponse, LatencyNs: 1<<60 + 1, HTTP: &api.HTTP{Code: 503, Method: "POST", URL: "/x", Protocol: "HTTP/2"}},
		&flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, LatencyNs: 1<<60 + 1, Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{
			Code: 503, Method: "POST", Url: "/x", Protocol: "HTTP/2"}}}},
	{"a DNS answer",
		&api.L7{Type: api.L7TypeResponse, LatencyNs: 800000, DNS: &api.DNS{Query: "www.example.com.", IPs: []string{"198.18.0.9", "fd00::9"},
			TTL: 300, CNAMEs: []string{"example.com."}, ObservationSource: "proxy", Rcode: 0, Qtypes: []string{"A"}, RRtypes: []string{"CNAME", "A"}}},
		&flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, LatencyNs: 800000, Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{
			Query: "www.example.com.", Ips: []string{"198.18.0.9", "fd00::9"}, Ttl: 300, Cnames: []string{"example.com."},
			ObservationSource: "proxy", Qtypes: []string{"A"}, Rrtypes: []string{"CNAME", "A"}}}}},
	{"a DNS NXDOMAIN",
		&api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{Query: "nope.", Rcode: 3}},
		&flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{Query: "nope.", Rcode: 3}}}},
	{"a Kafka response with a negative error code",
		&api.L7{Type: api.L7TypeResponse, Kafka: &api.Kafka{ErrorCode: -1, APIVersion: 7, APIKey: "produce", CorrelationID: 42, Topic: "orders"}},
		&flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, Record: &flowpb.Layer7_Kafka{Kafka: &flowpb.Kafka{
			ErrorCode: -1, ApiVersion: 7, ApiKey: "produce", CorrelationId: 42, Topic: "orders"}}}},
	{"a sample without a record",
		&api.L7{Type: api.L7TypeSample},
		&flowpb.Layer7{Type: flowpb.L7FlowType_SAMPLE}},
	{"an empty record",
		&api.L7{},
		&flowpb.Layer7{}},
}

func l7Flow(l7 *api.L7) *api.Flow {
	return &api.Flow{
		Time: time.Date(2026, 11, 23, 9, 30, 14, 0, time.UTC), Verdict: api.VerdictForwarded, Type: api.FlowTypeL7,
		IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
		L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 40000, DestinationPort: 8080}, NodeName: "node1",
		TrafficDirection: api.TrafficDirectionEgress, L7: l7,
	}
}

// flowObject is the "flow" object of a line.
func flowObject(t *testing.T, line []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	return m["flow"]
}

func TestL7JSONIsWhatProtojsonReadsAndWrites(t *testing.T) {
	for _, tt := range l7ProtojsonCases {
		t.Run(tt.name, func(t *testing.T) {
			f := l7Flow(tt.l7)
			line := api.AppendJSON(nil, f)

			// protojson reads our JSON as Hubble's flow, L7 part equal.
			var pf flowpb.Flow
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(flowObject(t, line), &pf); err != nil {
				t.Fatalf("protojson cannot read %s: %v", line, err)
			}
			if !proto.Equal(pf.GetL7(), tt.pb) {
				t.Errorf("protojson read l7 %v, want %v\nline: %s", pf.GetL7(), tt.pb, line)
			}
			if pf.GetType() != flowpb.FlowType_L7 || pf.GetSummary() != f.Summary() {
				t.Errorf("protojson read Type %v Summary %q, want L7 %q", pf.GetType(), pf.GetSummary(), f.Summary())
			}

			// Our "l7" object is, value for value, protojson's.
			want, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(tt.pb)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(flowObject(t, line), &got); err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got["l7"], want) {
				t.Errorf("l7 object %s, protojson writes %s", got["l7"], want)
			}

			// What protojson writes, ParseJSON reads back as the record.
			pf.L7 = tt.pb
			pj, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&pf)
			if err != nil {
				t.Fatal(err)
			}
			var back api.Flow
			if err := api.ParseJSON([]byte(`{"flow":`+string(pj)+`}`), &back); err != nil {
				t.Fatalf("ParseJSON of protojson's %s: %v", pj, err)
			}
			if !reflect.DeepEqual(back.L7, tt.l7) {
				t.Errorf("ParseJSON read %+v from protojson's %s, want %+v", back.L7, pj, tt.l7)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestL7SummariesAreHubbles(t *testing.T) {
	tests := []struct {
		name string
		l7   *api.L7
		want string
	}{
		{"an HTTP request: protocol, method, URL",
			&api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: "GET", URL: "http://backend:8080/api", Protocol: "HTTP/1.1"}},
			"HTTP/1.1 GET http://backend:8080/api"},
		{"an HTTP response: code, whole milliseconds, the request",
			&api.L7{Type: api.L7TypeResponse, LatencyNs: 12_999_999, HTTP: &api.HTTP{Code: 200, Method: "GET", URL: "/api", Protocol: "HTTP/1.1"}},
			"HTTP/1.1 200 12ms (GET /api)"},
		{"a DNS query: name and types",
			&api.L7{Type: api.L7TypeRequest, DNS: &api.DNS{Query: "example.com.", Qtypes: []string{"A", "AAAA"}}},
			"DNS Query example.com. A,AAAA"},
		{"a DNS answer seen by the proxy: addresses, TTL",
			&api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{Query: "example.com.", IPs: []string{"198.18.0.9", "198.18.0.10"}, TTL: 60,
				ObservationSource: "proxy", Qtypes: []string{"A"}}},
			`DNS Answer "198.18.0.9,198.18.0.10" TTL: 60 (Proxy example.com. A)`},
		{"a DNS answer of CNAMEs only",
			&api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{Query: "www.example.", CNAMEs: []string{"a.example.", "b.example."}, TTL: 5}},
			`DNS Answer CNAMEs: "a.example.,b.example." TTL: 5 (Query www.example. )`},
		{"a failed DNS answer names the rcode",
			&api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{Query: "nope.", Rcode: 5, Qtypes: []string{"A"}}},
			"DNS Answer RCode: Query Refused TTL: 0 (Query nope. A)"},
		{"a Kafka request",
			&api.L7{Type: api.L7TypeRequest, Kafka: &api.Kafka{APIKey: "fetch", Topic: "orders", CorrelationID: 3}},
			"Kafka request fetch topic orders correlation id 3"},
		{"a sample has none", &api.L7{Type: api.L7TypeSample, HTTP: &api.HTTP{Method: "GET"}}, ""},
		{"a request without a record has none", &api.L7{Type: api.L7TypeRequest}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := l7Flow(tt.l7)
			if got := f.Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
			line := string(api.AppendJSON(nil, f))
			if tt.want == "" && strings.Contains(line, `"Summary"`) {
				t.Errorf("an empty summary is written: %s", line)
			}
		})
	}
}

func TestAppendJSONOfAnL7FlowDoesNotAllocateWithRoom(t *testing.T) {
	f := l7Flow(l7ProtojsonCases[0].l7)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = api.AppendJSON(buf[:0], f) }); n != 0 {
		t.Errorf("AppendJSON of an L7 flow allocated %.1f times per call, want 0", n)
	}
}

func TestParseJSONRejectsBrokenL7(t *testing.T) {
	tests := []struct{ name, l7, wantErr string }{
		{"an unknown type", `{"type":"MAYBE"}`, `l7.type: unknown L7 flow type "MAYBE"`},
		{"a latency that is no number", `{"latency_ns":"soon"}`, `"soon" is not an unsigned 64-bit number`},
		{"a negative latency", `{"latency_ns":-1}`, "-1 is not an unsigned 64-bit number"},
		{"a list for the HTTP record", `{"http":[]}`, "parse flow JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f api.Flow
			err := api.ParseJSON([]byte(`{"flow":{"l7":`+tt.l7+`}}`), &f)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseJSON error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseJSONReadsALatencyAsANumberToo(t *testing.T) {
	var f api.Flow
	if err := api.ParseJSON([]byte(`{"flow":{"l7":{"type":"RESPONSE","latency_ns":1500}}}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.L7 == nil || f.L7.LatencyNs != 1500 || f.L7.Type != api.L7TypeResponse {
		t.Errorf("L7 %+v", f.L7)
	}
}

func BenchmarkAppendJSONL7(b *testing.B) {
	f := l7Flow(l7ProtojsonCases[2].l7)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = api.AppendJSON(buf[:0], f)
	}
	b.SetBytes(int64(len(buf)))
}
