package filter

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// The kinds that test the flow as a whole: verdict, type, node,
// traffic-direction, reply, ip-version, drop-reason, event-type.

func parseVerdict(raw string) (value, error) {
	vd, err := api.ParseVerdict(raw)
	if err != nil || vd == api.VerdictUnknown {
		return value{}, fmt.Errorf("verdict must be FORWARDED, DROPPED, AUDIT, ERROR or TRACED")
	}
	return value{text: vd.String(), num: uint32(vd)}, nil
}

func matchVerdict(v *value, fl *api.Flow, _ side) bool {
	return uint32(fl.Verdict) == v.num
}

func parseType(raw string) (value, error) {
	t, err := api.ParseFlowType(raw)
	if err != nil || t == api.FlowTypeUnknown {
		return value{}, fmt.Errorf("type must be l3_l4, l7 or sock")
	}
	return value{text: strings.ToLower(t.String()), num: uint32(t)}, nil
}

func matchType(v *value, fl *api.Flow, _ side) bool {
	return uint32(fl.Type) == v.num
}

func parseNode(raw string) (value, error) {
	if _, err := path.Match(raw, ""); err != nil {
		return value{}, fmt.Errorf("node must be a name or a glob: %w", err)
	}
	return value{text: raw, name: raw, glob: strings.ContainsAny(raw, "*?[\\")}, nil
}

func matchNode(v *value, fl *api.Flow, _ side) bool {
	if !v.glob {
		return fl.NodeName == v.name
	}
	ok, _ := path.Match(v.name, fl.NodeName) // the pattern was checked by parseNode
	return ok
}

func parseTrafficDirection(raw string) (value, error) {
	d, err := api.ParseTrafficDirection(raw)
	if err != nil {
		return value{}, fmt.Errorf("traffic-direction must be ingress, egress or traffic_direction_unknown")
	}
	return value{text: strings.ToLower(d.String()), num: uint32(d)}, nil
}

func matchTrafficDirection(v *value, fl *api.Flow, _ side) bool {
	return uint32(fl.TrafficDirection) == v.num
}

func parseReply(raw string) (value, error) {
	b, err := strconv.ParseBool(raw)
	if err != nil {
		return value{}, fmt.Errorf("reply must be true or false")
	}
	v := value{text: strconv.FormatBool(b)}
	if b {
		v.num = 1
	}
	return v, nil
}

func matchReply(v *value, fl *api.Flow, _ side) bool {
	return fl.IsReply == (v.num == 1)
}

func parseIPVersion(raw string) (value, error) {
	var ver api.IPVersion
	switch strings.ToLower(raw) {
	case "v4": // hubble observe's spellings
		ver = api.IPv4
	case "v6":
		ver = api.IPv6
	case "none":
		ver = api.IPNotUsed
	default:
		var err error
		if ver, err = api.ParseIPVersion(raw); err != nil {
			return value{}, fmt.Errorf("ip-version must be ipv4, ipv6 or none")
		}
	}
	text := strings.ToLower(ver.String())
	if ver == api.IPNotUsed {
		text = "none"
	}
	return value{text: text, num: uint32(ver)}, nil
}

func matchIPVersion(v *value, fl *api.Flow, _ side) bool {
	return uint32(fl.IP.Version) == v.num
}

func parseDropReason(raw string) (value, error) {
	r, err := api.ParseDropReason(raw)
	if err != nil {
		return value{}, fmt.Errorf("drop-reason must be a drop reason's name (POLICY_DENIED, POLICY_DENY) or number")
	}
	return value{text: r.String(), num: uint32(r)}, nil
}

// matchDropReason is Hubble's drop_reason_desc: only the datapath's drops
// have one. Hubble's L7 parser gives an L7 record none, even when the
// proxy denied it: Periscope's L7 records keep the reason for its own
// accounts, but as Hubble sees them they have none.
func matchDropReason(v *value, fl *api.Flow, _ side) bool {
	return fl.Verdict == api.VerdictDropped && fl.Type != api.FlowTypeL7 && uint32(fl.DropReason) == v.num
}

// Cilium's monitor message types: the values of Hubble's event types
// (CiliumEventType.type, EventTypeFilter.type) that Periscope's flows have.
const (
	EventTypeDrop          = 1
	EventTypeTrace         = 4
	EventTypePolicyVerdict = 5
	EventTypeL7            = 129
)

// eventTypeNames are the event types' names, as hubble observe --type
// spells them.
var eventTypeNames = map[string]uint32{
	"drop": EventTypeDrop, "trace": EventTypeTrace, "policy-verdict": EventTypePolicyVerdict, "l7": EventTypeL7,
}

// parseEventType reads TYPE or TYPE:SUBTYPE, as hubble observe --type
// spells them: a type by name or number; a trace's sub-type is a trace
// observation point by name or number (trace:to-endpoint, 4:0), a drop's a
// drop reason (drop:POLICY_DENIED, 1:133). No other type has sub-types
// Periscope's flows carry.
func parseEventType(raw string) (value, error) {
	typ, sub, hasSub := strings.Cut(raw, ":")
	v, err := parseEventTypeName(typ)
	if err != nil || !hasSub {
		return v, err
	}
	v.hasSub = true
	switch v.num {
	case EventTypeTrace:
		p, ok := api.ParseTracePoint(strings.ToLower(sub))
		if !ok {
			n, err := strconv.ParseUint(sub, 10, 8)
			if err != nil || api.TracePoint(n).String() == "" {
				return value{}, fmt.Errorf("event-type trace's sub-type must be a trace observation point (from-endpoint, to-endpoint, from-network, to-network, to-stack, ...) or its number, not %q", sub)
			}
			p = api.TracePoint(n)
		}
		v.sub, v.text = uint32(p), v.text+":"+p.String()
	case EventTypeDrop:
		r, err := api.ParseDropReason(sub)
		if err != nil {
			return value{}, fmt.Errorf("event-type drop's sub-type must be a drop reason's name (POLICY_DENIED) or number, not %q", sub)
		}
		v.sub, v.text = uint32(r), v.text+":"+r.String()
	default:
		return value{}, fmt.Errorf("event-type %s has no sub-types in Periscope (trace and drop have), not %q", v.text, raw)
	}
	return v, nil
}

// parseEventTypeName reads an event type without its sub-type: a name
// (drop, trace, policy-verdict, l7, in any case) or a number 0-255.
func parseEventTypeName(raw string) (value, error) {
	name := strings.ToLower(raw)
	if n, ok := eventTypeNames[name]; ok {
		return value{text: name, num: n}, nil
	}
	n, err := strconv.ParseUint(raw, 10, 8)
	if err != nil {
		return value{}, fmt.Errorf("event-type must be drop, trace, policy-verdict, l7 or a number 0-255, with an optional :SUBTYPE (trace:to-endpoint)")
	}
	for name, m := range eventTypeNames {
		if uint32(n) == m {
			return value{text: name, num: m}, nil
		}
	}
	return value{text: strconv.FormatUint(n, 10), num: uint32(n)}, nil
}

// matchEventType maps Cilium's monitor message types onto Periscope's
// flows, as relay/hubble's FlowToProto types them: L7 flows are L7 events
// whatever their verdict (Hubble's L7 parser types every proxy record
// so, a denied request too); other drops are drop events (their sub-type
// the drop reason); other L3/L4 and socket flows trace (and L3/L4 ones
// policy verdict) events, a trace's sub-type the trace observation point of
// the flow's own point (api.Flow.TracePoint: a sock flow has none). Other
// types match no flow.
func matchEventType(v *value, fl *api.Flow, _ side) bool {
	switch v.num {
	case EventTypeDrop:
		return fl.Verdict == api.VerdictDropped && fl.Type != api.FlowTypeL7 && (!v.hasSub || uint32(fl.DropReason) == v.sub)
	case EventTypeTrace:
		if v.hasSub {
			p, ok := fl.TracePoint()
			return ok && uint32(p) == v.sub && fl.Verdict != api.VerdictDropped
		}
		return fl.Verdict != api.VerdictDropped && (fl.Type == api.FlowTypeL3L4 || fl.Type == api.FlowTypeSock)
	case EventTypePolicyVerdict:
		return fl.Type == api.FlowTypeL3L4
	case EventTypeL7:
		return fl.Type == api.FlowTypeL7
	}
	return false
}
