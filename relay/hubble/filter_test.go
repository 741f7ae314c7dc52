package hubble

import (
	"slices"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/filter"
)

// Every FlowFilter field a filter kind names exists, is repeated, and has
// values CompileFilters can write as chips.
func TestEveryKindsHubbleFieldIsRead(t *testing.T) {
	fields := (&flowpb.FlowFilter{}).ProtoReflect().Descriptor().Fields()
	for _, k := range filter.Kinds() {
		for _, name := range k.Hubble {
			fd := fields.ByName(protoreflect.Name(name))
			switch {
			case fd == nil:
				t.Errorf("kind %s: FlowFilter has no field %q (fix filter's table)", k.Name, name)
				continue
			case !fd.IsList():
				t.Errorf("kind %s: FlowFilter.%s is not repeated", k.Name, name)
			}
			switch fd.Kind() {
			case protoreflect.StringKind, protoreflect.Uint32Kind, protoreflect.BoolKind, protoreflect.EnumKind:
			case protoreflect.MessageKind:
				if messageChips[fd.Message().FullName()] == nil {
					t.Errorf("kind %s: FlowFilter.%s holds %s, which messageChips cannot write as a chip value (add it in filter.go)",
						k.Name, name, fd.Message().FullName())
				}
			default:
				t.Errorf("kind %s: FlowFilter.%s is a %s, which chipValues cannot write", k.Name, name, fd.Kind())
			}
		}
	}
}

// The event types FlowToProto gives flows are those the event-type kind
// matches them by.
func TestEventTypesAgreeWithTheFilter(t *testing.T) {
	flows := testFlows()
	l7, sock := flows[0], flows[0]
	l7.Type, sock.Type = api.FlowTypeL7, api.FlowTypeSock
	flows = append(flows, l7, sock)
	for i := range flows {
		f := &flows[i]
		typ := FlowToProto(f).GetEventType().GetType()
		set, err := CompileFilters([]*flowpb.FlowFilter{{EventType: []*flowpb.EventTypeFilter{{Type: typ}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !set.Match(f) {
			t.Errorf("flow %d (%s, %s) has event type %d, which the event-type filter does not match it by", i, f.Verdict, f.Type, typ)
		}
	}
}

func TestFlowFiltersBecomeChipsWhenChipsCanSayThem(t *testing.T) {
	tests := []struct {
		name         string
		white, black []*flowpb.FlowFilter
		want         string // the chips pushed down; "" when they cannot be
	}{
		{"fields become terms", ff(&flowpb.FlowFilter{SourcePod: []string{"default/"}, DestinationPort: []string{"80", "443"}}), nil,
			"from:pod=default/ to:port=80 to:port=443"},
		{"the former extra fields are kinds", ff(&flowpb.FlowFilter{
			TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_INGRESS}, Reply: []bool{true},
			IpVersion: []flowpb.IPVersion{flowpb.IPVersion_IPv6}, DropReasonDesc: []flowpb.DropReason{flowpb.DropReason_POLICY_DENIED},
			Uuid: []string{"4F1A9C2E-5B7D-4E3A-9C1F-2B6D8E0A7C5D"}, Interface: []*flowpb.NetworkInterface{{Name: "eth0"}, {Index: 7}},
			EventType: []*flowpb.EventTypeFilter{{Type: 1}}}), nil,
			"traffic-direction=ingress reply=true ip-version=ipv6 drop-reason=POLICY_DENIED " +
				"uuid=4f1a9c2e-5b7d-4e3a-9c1f-2b6d8e0a7c5d interface=eth0 interface=:7 event-type=drop"},
		{"the L7 fields are kinds", ff(&flowpb.FlowFilter{
			Protocol: []string{"http"}, HttpStatusCode: []string{"404", "5+"}, HttpMethod: []string{"get"},
			HttpPath: []string{"^/api/"}, HttpUrl: []string{"example\\.com"}, DnsQuery: []string{"^www\\."},
			HttpHeader: []*flowpb.HTTPHeader{{Key: "content-type", Value: "application/json"}, {Key: ":authority", Value: "a:1"}},
			EventType:  []*flowpb.EventTypeFilter{{Type: filter.EventTypeL7}}}), nil,
			"protocol=http http-status=404 http-status=5+ http-method=GET http-path=^/api/ http-url=example\\.com dns-query=^www\\. " +
				"http-header=content-type:application/json http-header=:authority:a:1 event-type=l7"},
		{"a blacklist of single fields is negated chips", nil,
			[]*flowpb.FlowFilter{{Protocol: []string{"tcp"}}, {DestinationIp: []string{"10.0.1.3"}}},
			"!protocol=tcp !to:ip=10.0.1.3"},
		{"two whitelist filters are not chips", []*flowpb.FlowFilter{{Protocol: []string{"tcp"}}, {Protocol: []string{"udp"}}}, nil, ""},
		{"a blacklist filter of two fields is not chips", nil,
			ff(&flowpb.FlowFilter{Protocol: []string{"tcp"}, Reply: []bool{true}}), ""},
		{"a CEL expression is never chips", ff(&flowpb.FlowFilter{Protocol: []string{"tcp"},
			Experimental: &flowpb.FlowFilter_Experimental{CelExpression: []string{"true"}}}), nil, ""},
		{"an empty experimental field says nothing", ff(&flowpb.FlowFilter{Protocol: []string{"tcp"},
			Experimental: &flowpb.FlowFilter_Experimental{}}), nil, "protocol=tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := CompileFilters(tt.white, tt.black)
			if err != nil {
				t.Fatal(err)
			}
			chips, ok := set.Chips()
			slices.Sort(chips)
			want := strings.Fields(tt.want)
			slices.Sort(want)
			if ok != (tt.want != "") || !slices.Equal(chips, want) {
				t.Errorf("chips %q (%v), want %q", chips, ok, want)
			}
		})
	}
}
