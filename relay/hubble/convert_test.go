package hubble

import (
	"net/netip"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/periscope-dev/periscope/api"
)

func TestFlowToProtoCarriesEveryHubbleField(t *testing.T) {
	f := api.Flow{
		Time:       time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC),
		UUID:       [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 1, 2, 3, 4, 5, 6, 7},
		Verdict:    api.VerdictDropped,
		DropReason: api.DropReasonPolicyDeny,
		IP:         api.IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"), Version: api.IPv4},
		L4:         api.L4{Protocol: api.ProtoTCP, SourcePort: 40000, DestinationPort: 80, TCPFlags: api.TCPFlagSYN | api.TCPFlagACK},
		Source: api.Endpoint{ID: 7, Identity: 1234, Namespace: "default", Labels: []string{"k8s:app=frontend"},
			PodName: "frontend-1", Workload: "frontend"},
		Destination:      api.Endpoint{Identity: 2, Namespace: "shop", PodName: "backend"},
		Type:             api.FlowTypeL3L4,
		TrafficDirection: api.TrafficDirectionEgress,
		NodeName:         "node1",
		IsReply:          true,
		Interface:        api.Interface{Index: 10, Name: "veth-fe"},
		EgressDeniedBy:   []api.PolicyRef{{Name: "deny-all", Kind: "CiliumClusterwideNetworkPolicy", Revision: 8}},
		IngressAllowedBy: []api.PolicyRef{{Name: "allow-web", Namespace: "shop", Kind: "CiliumNetworkPolicy", Revision: 7}},
		SourceNames:      []string{"frontend.example.com"},
		DestinationNames: []string{"api.example.com", "www.example.com"},
	}
	pf := FlowToProto(&f)
	checks := []struct {
		name string
		ok   bool
	}{
		{"time", pf.GetTime().AsTime().Equal(f.Time)},
		{"uuid", pf.GetUuid() == "01234567-89ab-cdef-0001-020304050607"},
		{"verdict", pf.GetVerdict() == flowpb.Verdict_DROPPED},
		{"drop reason", pf.GetDropReasonDesc() == flowpb.DropReason_POLICY_DENY && pf.GetDropReason() == 181},
		{"IP", pf.GetIP().GetSource() == "10.0.0.1" && pf.GetIP().GetDestination() == "10.0.0.2" && pf.GetIP().GetIpVersion() == flowpb.IPVersion_IPv4},
		{"l4", pf.GetL4().GetTCP().GetSourcePort() == 40000 && pf.GetL4().GetTCP().GetDestinationPort() == 80 &&
			pf.GetL4().GetTCP().GetFlags().GetSYN() && pf.GetL4().GetTCP().GetFlags().GetACK() && !pf.GetL4().GetTCP().GetFlags().GetFIN()},
		{"source", pf.GetSource().GetID() == 7 && pf.GetSource().GetIdentity() == 1234 && pf.GetSource().GetNamespace() == "default" &&
			pf.GetSource().GetLabels()[0] == "k8s:app=frontend" && pf.GetSource().GetPodName() == "frontend-1" &&
			pf.GetSource().GetWorkloads()[0].GetName() == "frontend"},
		{"destination", pf.GetDestination().GetPodName() == "backend" && pf.GetDestination().GetNamespace() == "shop"},
		{"type", pf.GetType() == flowpb.FlowType_L3_L4},
		{"node", pf.GetNodeName() == "node1"},
		{"direction", pf.GetTrafficDirection() == flowpb.TrafficDirection_EGRESS},
		{"is_reply", pf.GetIsReply().GetValue()},
		{"interface", pf.GetInterface().GetIndex() == 10 && pf.GetInterface().GetName() == "veth-fe"},
		{"summary", pf.GetSummary() == "TCP Flags: SYN, ACK"},
		{"policies", pf.GetEgressDeniedBy()[0].GetName() == "deny-all" && pf.GetEgressDeniedBy()[0].GetNamespace() == "" &&
			pf.GetEgressDeniedBy()[0].GetKind() == "CiliumClusterwideNetworkPolicy" && pf.GetEgressDeniedBy()[0].GetRevision() == 8 &&
			pf.GetIngressAllowedBy()[0].GetName() == "allow-web" && pf.GetIngressAllowedBy()[0].GetNamespace() == "shop" &&
			pf.GetIngressAllowedBy()[0].GetKind() == "CiliumNetworkPolicy" && pf.GetIngressAllowedBy()[0].GetRevision() == 7},
		{"event type", pf.GetEventType().GetType() == monitorDrop},
		{"names", len(pf.GetSourceNames()) == 1 && pf.GetSourceNames()[0] == "frontend.example.com" &&
			len(pf.GetDestinationNames()) == 2 && pf.GetDestinationNames()[1] == "www.example.com"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not carried: %s", c.name, protojson.Format(pf))
		}
	}
}

func TestFilterChipsArePushedDownOnlyWhenExact(t *testing.T) {
	tests := []struct {
		name         string
		white, black []*flowpb.FlowFilter
		want         []string
		ok           bool
	}{
		{"one whitelist filter", ff(&flowpb.FlowFilter{SourcePod: []string{"default/fe"}, DestinationPort: []string{"80", "443"}}), nil,
			[]string{"from:pod=default/fe", "to:port=80", "to:port=443"}, true},
		{"a one-field blacklist negates", nil, ff(&flowpb.FlowFilter{Protocol: []string{"udp"}}), []string{"!protocol=udp"}, true},
		{"two whitelist filters cannot", []*flowpb.FlowFilter{{Protocol: []string{"udp"}}, {Protocol: []string{"tcp"}}}, nil, nil, false},
		{"a two-field blacklist cannot", nil, ff(&flowpb.FlowFilter{Protocol: []string{"udp"}, SourceIp: []string{"10.0.0.1"}}), nil, false},
		{"a field that once had no chip now has one", ff(&flowpb.FlowFilter{Reply: []bool{true}}), nil, []string{"reply=true"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := CompileFilters(tt.white, tt.black)
			if err != nil {
				t.Fatal(err)
			}
			chips, ok := fs.Chips()
			if ok != tt.ok || (ok && !equal(chips, tt.want)) {
				t.Errorf("got %v %v, want %v %v", chips, ok, tt.want, tt.ok)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
