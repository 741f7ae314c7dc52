package hubble

import (
	"fmt"
	"net/netip"
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/periscope-dev/periscope/api"
)

// FlowFromProto converts Hubble's flow.Flow to f, which it resets first:
// every field FlowToProto carries comes back as it was (Periscope's own
// extensions, which Hubble's record has no place for, stay zero). Fields
// Periscope does not model are ignored. An address or UUID that does not
// parse is an error naming the field.
func FlowFromProto(pf *flowpb.Flow, f *api.Flow) error {
	*f = api.Flow{
		Verdict:          api.Verdict(pf.GetVerdict()),
		DropReason:       api.DropReason(pf.GetDropReasonDesc()),
		Type:             api.FlowType(pf.GetType()),
		NodeName:         pf.GetNodeName(),
		TrafficDirection: api.TrafficDirection(pf.GetTrafficDirection()),
		IsReply:          pf.GetIsReply().GetValue() || pf.GetIsReply() == nil && pf.GetReply(),
		Source:           endpointFromProto(pf.GetSource()),
		Destination:      endpointFromProto(pf.GetDestination()),
		L4:               l4FromProto(pf.GetL4()),
		L7:               l7FromProto(pf.GetL7()),
		IngressAllowedBy: policyNames(pf.GetIngressAllowedBy()),
		EgressAllowedBy:  policyNames(pf.GetEgressAllowedBy()),
		IngressDeniedBy:  policyNames(pf.GetIngressDeniedBy()),
		EgressDeniedBy:   policyNames(pf.GetEgressDeniedBy()),
		SourceNames:      slices.Clone(pf.GetSourceNames()),
		DestinationNames: slices.Clone(pf.GetDestinationNames()),
	}
	f.Process.CgroupID = pf.GetCgroupId()
	if id := pf.GetTraceContext().GetParent().GetTraceId(); id != "" && f.L7 != nil {
		f.L7.TraceID = id
	}
	if f.DropReason == api.DropReasonUnknown {
		f.DropReason = api.DropReason(pf.GetDropReason())
	}
	if pf.GetTime() != nil {
		f.Time = pf.GetTime().AsTime()
	}
	if u := pf.GetUuid(); u != "" {
		if api.ParseUUID(u, &f.UUID) != nil {
			return fmt.Errorf("flow uuid %q: want 32 hex digits", u)
		}
	}
	if ip := pf.GetIP(); ip != nil {
		f.IP.Version = api.IPVersion(ip.GetIpVersion())
		for _, a := range []struct {
			field, s string
			dst      *netip.Addr
		}{{"IP.source", ip.GetSource(), &f.IP.Source}, {"IP.destination", ip.GetDestination(), &f.IP.Destination}} {
			if a.s == "" {
				continue
			}
			addr, err := netip.ParseAddr(a.s)
			if err != nil {
				return fmt.Errorf("flow %s: %w", a.field, err)
			}
			*a.dst = addr
		}
	}
	if i := pf.GetInterface(); i != nil {
		f.Interface = api.Interface{Index: i.GetIndex(), Name: i.GetName()}
	}
	return nil
}

func endpointFromProto(pe *flowpb.Endpoint) api.Endpoint {
	ep := api.Endpoint{
		ID: pe.GetID(), Identity: pe.GetIdentity(), Namespace: pe.GetNamespace(),
		Labels: nilIfEmpty(pe.GetLabels()), PodName: pe.GetPodName(),
	}
	if ws := pe.GetWorkloads(); len(ws) > 0 {
		ep.Workload = ws[0].GetName()
	}
	return ep
}

func l4FromProto(pl *flowpb.Layer4) api.L4 {
	ports := func(proto uint8, sp, dp uint32) api.L4 {
		return api.L4{Protocol: proto, SourcePort: uint16(sp), DestinationPort: uint16(dp)}
	}
	switch {
	case pl.GetTCP() != nil:
		t := pl.GetTCP()
		l4 := ports(api.ProtoTCP, t.GetSourcePort(), t.GetDestinationPort())
		fl := t.GetFlags()
		for _, b := range []struct {
			set  bool
			flag api.TCPFlags
		}{
			{fl.GetFIN(), api.TCPFlagFIN}, {fl.GetSYN(), api.TCPFlagSYN}, {fl.GetRST(), api.TCPFlagRST},
			{fl.GetPSH(), api.TCPFlagPSH}, {fl.GetACK(), api.TCPFlagACK}, {fl.GetURG(), api.TCPFlagURG},
			{fl.GetECE(), api.TCPFlagECE}, {fl.GetCWR(), api.TCPFlagCWR}, {fl.GetNS(), api.TCPFlagNS},
		} {
			if b.set {
				l4.TCPFlags |= b.flag
			}
		}
		return l4
	case pl.GetUDP() != nil:
		return ports(api.ProtoUDP, pl.GetUDP().GetSourcePort(), pl.GetUDP().GetDestinationPort())
	case pl.GetSCTP() != nil:
		return ports(api.ProtoSCTP, pl.GetSCTP().GetSourcePort(), pl.GetSCTP().GetDestinationPort())
	case pl.GetICMPv4() != nil:
		return api.L4{Protocol: api.ProtoICMPv4, ICMPType: uint8(pl.GetICMPv4().GetType()), ICMPCode: uint8(pl.GetICMPv4().GetCode())}
	case pl.GetICMPv6() != nil:
		return api.L4{Protocol: api.ProtoICMPv6, ICMPType: uint8(pl.GetICMPv6().GetType()), ICMPCode: uint8(pl.GetICMPv6().GetCode())}
	}
	return api.L4{}
}

func policyNames(ps []*flowpb.Policy) []api.PolicyRef {
	if len(ps) == 0 {
		return nil
	}
	out := make([]api.PolicyRef, len(ps))
	for i, p := range ps {
		out[i] = api.PolicyRef{Name: p.GetName(), Namespace: p.GetNamespace(), Kind: p.GetKind(), Revision: p.GetRevision()}
	}
	return out
}
