package hubble

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/periscope-dev/periscope/api"
)

// Cilium monitor message types, as Hubble's CiliumEventType.type and
// EventTypeFilter.type carry them.
const (
	monitorDrop          = 1
	monitorTrace         = 4
	monitorPolicyVerdict = 5
	monitorL7            = 129
)

// FlowToProto converts f to Hubble's flow.Flow with every field Periscope
// has. Periscope's own extensions (counters, event kind, process) have no
// place in Hubble's record and are left out. The result shares nothing with f.
func FlowToProto(f *api.Flow) *flowpb.Flow {
	pf := &flowpb.Flow{
		Verdict:          flowpb.Verdict(f.Verdict),
		DropReason:       uint32(f.DropReason),
		DropReasonDesc:   flowpb.DropReason(f.DropReason),
		Source:           endpointToProto(&f.Source),
		Destination:      endpointToProto(&f.Destination),
		Type:             flowpb.FlowType(f.Type),
		NodeName:         f.NodeName,
		TrafficDirection: flowpb.TrafficDirection(f.TrafficDirection),
		IsReply:          wrapperspb.Bool(f.IsReply),
		Reply:            f.IsReply,
		Summary:          f.Summary(),
		EgressAllowedBy:  policies(f.EgressAllowedBy),
		IngressAllowedBy: policies(f.IngressAllowedBy),
		EgressDeniedBy:   policies(f.EgressDeniedBy),
		IngressDeniedBy:  policies(f.IngressDeniedBy),
		CgroupId:         f.Process.CgroupID,
		SourceNames:      slices.Clone(f.SourceNames),
		DestinationNames: slices.Clone(f.DestinationNames),
	}
	if !f.Time.IsZero() {
		pf.Time = timestamppb.New(f.Time)
	}
	if f.UUID != ([16]byte{}) {
		pf.Uuid = api.FormatUUID(&f.UUID)
	}
	if f.IP.Source.IsValid() || f.IP.Destination.IsValid() || f.IP.Version != api.IPNotUsed {
		pf.IP = &flowpb.IP{IpVersion: flowpb.IPVersion(f.IP.Version)}
		if f.IP.Source.IsValid() {
			pf.IP.Source = f.IP.Source.String()
		}
		if f.IP.Destination.IsValid() {
			pf.IP.Destination = f.IP.Destination.String()
		}
	}
	pf.L4 = l4ToProto(&f.L4)
	pf.L7 = l7ToProto(f.L7)
	if f.L7 != nil && f.L7.TraceID != "" {
		pf.TraceContext = &flowpb.TraceContext{Parent: &flowpb.TraceParent{TraceId: f.L7.TraceID}}
	}
	if f.Interface != (api.Interface{}) {
		pf.Interface = &flowpb.NetworkInterface{Index: f.Interface.Index, Name: f.Interface.Name}
	}
	switch {
	case f.Type == api.FlowTypeL7:
		// Hubble's L7 parser: an access-log event (129) whatever the
		// verdict, and no drop reason, a denied request's neither.
		pf.EventType = &flowpb.CiliumEventType{Type: monitorL7}
		pf.DropReason, pf.DropReasonDesc = 0, flowpb.DropReason_DROP_REASON_UNKNOWN
	case f.Verdict == api.VerdictDropped:
		pf.EventType = &flowpb.CiliumEventType{Type: monitorDrop, SubType: int32(f.DropReason)}
	default:
		pf.EventType = &flowpb.CiliumEventType{Type: monitorTrace}
		if p, ok := f.TracePoint(); ok {
			pf.EventType.SubType = int32(p)
			pf.TraceObservationPoint = traceObservationPoint(p)
		}
	}
	return pf
}

// traceObservationPoint is Hubble's TraceObservationPoint of a trace
// sub-type: the same number, but to-endpoint (0, the enum's zero value) is
// TO_ENDPOINT (101), as Hubble's parser writes it.
func traceObservationPoint(p api.TracePoint) flowpb.TraceObservationPoint {
	if p == api.TraceToEndpoint {
		return flowpb.TraceObservationPoint_TO_ENDPOINT
	}
	return flowpb.TraceObservationPoint(p)
}

func endpointToProto(ep *api.Endpoint) *flowpb.Endpoint {
	pe := &flowpb.Endpoint{
		ID:        ep.ID,
		Identity:  ep.Identity,
		Namespace: ep.Namespace,
		PodName:   ep.PodName,
	}
	if len(ep.Labels) > 0 {
		pe.Labels = append([]string(nil), ep.Labels...)
	}
	if ep.Workload != "" {
		pe.Workloads = []*flowpb.Workload{{Name: ep.Workload}}
	}
	return pe
}

func l4ToProto(l4 *api.L4) *flowpb.Layer4 {
	sp, dp := uint32(l4.SourcePort), uint32(l4.DestinationPort)
	switch l4.Protocol {
	case api.ProtoTCP:
		tcp := &flowpb.TCP{SourcePort: sp, DestinationPort: dp}
		if l4.TCPFlags != 0 {
			fl := l4.TCPFlags
			tcp.Flags = &flowpb.TCPFlags{
				FIN: fl&api.TCPFlagFIN != 0, SYN: fl&api.TCPFlagSYN != 0, RST: fl&api.TCPFlagRST != 0,
				PSH: fl&api.TCPFlagPSH != 0, ACK: fl&api.TCPFlagACK != 0, URG: fl&api.TCPFlagURG != 0,
				ECE: fl&api.TCPFlagECE != 0, CWR: fl&api.TCPFlagCWR != 0, NS: fl&api.TCPFlagNS != 0,
			}
		}
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: tcp}}
	case api.ProtoUDP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: sp, DestinationPort: dp}}}
	case api.ProtoSCTP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: sp, DestinationPort: dp}}}
	case api.ProtoICMPv4:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: uint32(l4.ICMPType), Code: uint32(l4.ICMPCode)}}}
	case api.ProtoICMPv6:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: uint32(l4.ICMPType), Code: uint32(l4.ICMPCode)}}}
	}
	return nil
}

func policies(refs []api.PolicyRef) []*flowpb.Policy {
	if len(refs) == 0 {
		return nil
	}
	out := make([]*flowpb.Policy, len(refs))
	for i, p := range refs {
		out[i] = &flowpb.Policy{Name: p.Name, Namespace: p.Namespace, Kind: p.Kind, Revision: p.Revision}
	}
	return out
}
