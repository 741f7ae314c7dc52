package hubble

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
	"github.com/periscope-dev/periscope/api/apitest"
)

// testTraceID is the trace ID of l7TestFlows' HTTP exchange.
const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// l7TestFlows are an HTTP and a DNS exchange of the L7 test source, and a
// Kafka response, enriched as a collector would.
func l7TestFlows() []api.Flow {
	fe, be := netip.AddrPortFrom(ipFrontend, 40100), netip.AddrPortFrom(ipBackend, 8080)
	flows := apitest.HTTPExchange{Client: fe, Server: be, Method: "PUT", URL: "http://backend-5c:8080/applicants/_create/103294",
		Code: 201, Latency: 12 * time.Millisecond, RequestHeaders: []api.HTTPHeader{{Key: "content-type", Value: "application/json"}},
		TraceID: testTraceID,
	}.Flows(t0.Add(10 * time.Second))
	flows = append(flows, apitest.DNSExchange{Client: netip.AddrPortFrom(ipFrontend, 40200), Server: netip.AddrPortFrom(ipDB, 53),
		Query: "example.com.", IPs: []string{"192.0.2.9"}, TTL: 300, Latency: time.Millisecond,
	}.Flows(t0.Add(11*time.Second))...)
	kafka := flows[1]
	kafka.UUID[8] = 'k'
	kafka.L7 = &api.L7{Type: api.L7TypeResponse, Kafka: &api.Kafka{ErrorCode: 3, APIVersion: 2, APIKey: "produce", CorrelationID: 9, Topic: "orders"}}
	flows = append(flows, kafka)
	for i := range flows {
		flows[i].NodeName = "node1"
		flows[i].Source = api.Endpoint{Identity: 1000 + uint32(i), Namespace: "default", PodName: "pod", Labels: []string{"k8s:app=x"}, Workload: "x"}
	}
	return flows
}

func TestFlowToProtoCarriesTheL7Record(t *testing.T) {
	flows := l7TestFlows()
	req, resp, dnsAnswer, kafka := FlowToProto(&flows[0]), FlowToProto(&flows[1]), FlowToProto(&flows[3]), FlowToProto(&flows[4])
	deniedFlow := flows[0]
	deniedFlow.Verdict, deniedFlow.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
	denied := FlowToProto(&deniedFlow)
	checks := []struct {
		name string
		ok   bool
	}{
		{"type", req.GetType() == flowpb.FlowType_L7 && req.GetL7().GetType() == flowpb.L7FlowType_REQUEST},
		{"event type", req.GetEventType().GetType() == monitorL7},
		{"HTTP request", req.GetL7().GetHttp().GetMethod() == "PUT" && req.GetL7().GetHttp().GetProtocol() == "HTTP/1.1" &&
			req.GetL7().GetHttp().GetUrl() == "http://backend-5c:8080/applicants/_create/103294" &&
			req.GetL7().GetHttp().GetHeaders()[0].GetValue() == "application/json"},
		{"HTTP response", resp.GetL7().GetHttp().GetCode() == 201 && resp.GetL7().GetLatencyNs() == uint64(12*time.Millisecond) &&
			resp.GetIsReply().GetValue()},
		{"summary", resp.GetSummary() == "HTTP/1.1 201 12ms (PUT http://backend-5c:8080/applicants/_create/103294)"},
		{"DNS answer", dnsAnswer.GetL7().GetDns().GetQuery() == "example.com." && dnsAnswer.GetL7().GetDns().GetIps()[0] == "192.0.2.9" &&
			dnsAnswer.GetL7().GetDns().GetTtl() == 300 && dnsAnswer.GetL7().GetDns().GetObservationSource() == "proxy" &&
			dnsAnswer.GetL7().GetDns().GetRrtypes()[0] == "A"},
		{"Kafka", kafka.GetL7().GetKafka().GetTopic() == "orders" && kafka.GetL7().GetKafka().GetErrorCode() == 3},
		{"trace context", req.GetTraceContext().GetParent().GetTraceId() == testTraceID &&
			resp.GetTraceContext().GetParent().GetTraceId() == testTraceID && dnsAnswer.GetTraceContext() == nil},
		{"no L7 on an L3/L4 flow", FlowToProto(&testFlows()[0]).GetL7() == nil},
		// Hubble's L7 parser: a denied request is an L7 event with no drop reason.
		{"a denied request's event type", denied.GetEventType().GetType() == monitorL7 && denied.GetEventType().GetSubType() == 0},
		{"a denied request's drop reason", denied.GetVerdict() == flowpb.Verdict_DROPPED && denied.GetDropReason() == 0 &&
			denied.GetDropReasonDesc() == flowpb.DropReason_DROP_REASON_UNKNOWN},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not carried", c.name)
		}
	}
	// The gRPC record and the JSON wire form say the same.
	for i := range flows {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(api.AppendJSON(nil, &flows[i]), &m); err != nil {
			t.Fatal(err)
		}
		var fromJSON flowpb.Flow
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(m["flow"], &fromJSON); err != nil {
			t.Fatal(err)
		}
		if got := FlowToProto(&flows[i]); !proto.Equal(got.GetL7(), fromJSON.GetL7()) || got.GetSummary() != fromJSON.GetSummary() ||
			!proto.Equal(got.GetTraceContext(), fromJSON.GetTraceContext()) {
			t.Errorf("flow %d: gRPC l7 %v summary %q trace %v, JSON l7 %v summary %q trace %v", i, got.GetL7(), got.GetSummary(),
				got.GetTraceContext(), fromJSON.GetL7(), fromJSON.GetSummary(), fromJSON.GetTraceContext())
		}
	}
}

func TestFlowFromProtoReadsBackWhatFlowToProtoWrote(t *testing.T) {
	flows := append(testFlows(), l7TestFlows()...)
	full := testFlows()[1]
	full.Source = api.Endpoint{ID: 7, Identity: 1234, Namespace: "default", Labels: []string{"k8s:app=frontend"}, PodName: "fe", Workload: "frontend"}
	full.IP = api.IP{Source: netip.MustParseAddr("fd00::1"), Destination: netip.MustParseAddr("fd00::2"), Version: api.IPv6}
	full.L4.TCPFlags = api.TCPFlagSYN | api.TCPFlagACK | api.TCPFlagFIN | api.TCPFlagRST | api.TCPFlagPSH | api.TCPFlagURG |
		api.TCPFlagECE | api.TCPFlagCWR | api.TCPFlagNS
	full.TrafficDirection, full.IsReply, full.NodeName = api.TrafficDirectionIngress, true, "node2"
	full.Interface = api.Interface{Index: 3, Name: "eth0"}
	full.IngressDeniedBy, full.EgressAllowedBy = []api.PolicyRef{{Name: "deny", Kind: "CiliumClusterwideNetworkPolicy"}}, []api.PolicyRef{{Namespace: "default", Name: "allow-a", Kind: "CiliumNetworkPolicy", Revision: 3}, {Name: "allow-b", Kind: "CiliumClusterwideNetworkPolicy"}}
	full.Process.CgroupID = 99
	flows = append(flows, full)
	for i, want := range flows {
		var got api.Flow
		got.NodeName = "left over"
		if err := FlowFromProto(FlowToProto(&want), &got); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		got.Time = got.Time.In(want.Time.Location())
		if !reflect.DeepEqual(got, want) {
			t.Errorf("flow %d changed on the way:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestFlowFromProtoRejectsBrokenFields(t *testing.T) {
	tests := []struct {
		name    string
		pf      *flowpb.Flow
		wantErr string
	}{
		{"a short uuid", &flowpb.Flow{Uuid: "0123"}, `flow uuid "0123": want 32 hex digits`},
		{"a bad source address", &flowpb.Flow{IP: &flowpb.IP{Source: "10.0.0"}}, "flow IP.source"},
		{"a bad destination address", &flowpb.Flow{IP: &flowpb.IP{Destination: "nowhere"}}, "flow IP.destination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f api.Flow
			if err := FlowFromProto(tt.pf, &f); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("FlowFromProto: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
