package api

import (
	"net/netip"
	"strconv"
)

// AppendJSON appends f's wire form to dst and returns the extended slice: ONE
// JSON object shaped like Hubble's GetFlowsResponse as `hubble observe -o json`
// prints it (protojson with proto field names),
//
//	{"flow":{...},"node_name":"...","time":"..."}
//
// WITHOUT a trailing newline: a writer of JSON lines appends '\n' itself.
//
// Like protojson it omits zero numbers, empty strings and lists, and enums
// at their default value; an L7 flow's "l7" object comes after "node_name",
// in flow.proto's order. The exceptions are Hubble's: "is_reply" (a
// BoolValue, always set) and both endpoints. Periscope's own fields live under
// "flow"."periscope" so that they never collide with Hubble's.
//
// AppendJSON does not allocate when dst has room for the result.
func AppendJSON(dst []byte, f *Flow) []byte {
	dst = append(dst, `{"flow":{`...)
	dst = appendTimeField(dst, "time", f.Time)
	if f.UUID != ([16]byte{}) {
		dst = appendKey(dst, "uuid")
		dst = append(dst, '"')
		dst = AppendUUID(dst, &f.UUID)
		dst = append(dst, '"')
	}
	if f.Verdict != VerdictUnknown {
		dst = appendEnum(dst, "verdict", f.Verdict.String())
	}
	if f.DropReason != DropReasonUnknown {
		dst = appendUintField(dst, "drop_reason", uint64(f.DropReason))
		dst = appendEnum(dst, "drop_reason_desc", f.DropReason.String())
	}
	dst = appendIP(dst, &f.IP)
	dst = appendL4(dst, &f.L4)
	dst = appendEndpoint(dst, "source", &f.Source)
	dst = appendEndpoint(dst, "destination", &f.Destination)
	if f.Type != FlowTypeUnknown {
		dst = appendEnum(dst, "Type", f.Type.String())
	}
	dst = appendStringField(dst, "node_name", f.NodeName)
	dst = appendStringsField(dst, "source_names", f.SourceNames)
	dst = appendStringsField(dst, "destination_names", f.DestinationNames)
	if f.L7 != nil {
		dst = appendL7(dst, f.L7)
	}
	if f.TrafficDirection != TrafficDirectionUnknown {
		dst = appendEnum(dst, "traffic_direction", f.TrafficDirection.String())
	}
	dst = appendKey(dst, "is_reply")
	dst = strconv.AppendBool(dst, f.IsReply)
	if f.Interface != (Interface{}) {
		dst = appendKey(dst, "interface")
		dst = append(dst, '{')
		dst = appendUintField(dst, "index", uint64(f.Interface.Index))
		dst = appendStringField(dst, "name", f.Interface.Name)
		dst = append(dst, '}')
	}
	if f.L7 != nil && f.L7.TraceID != "" {
		dst = appendKey(dst, "trace_context")
		dst = append(dst, `{"parent":{`...)
		dst = appendStringField(dst, "trace_id", f.L7.TraceID)
		dst = append(dst, "}}"...)
	}
	dst = appendSummary(dst, f)
	dst = appendPolicies(dst, "egress_allowed_by", f.EgressAllowedBy)
	dst = appendPolicies(dst, "ingress_allowed_by", f.IngressAllowedBy)
	dst = appendPolicies(dst, "egress_denied_by", f.EgressDeniedBy)
	dst = appendPolicies(dst, "ingress_denied_by", f.IngressDeniedBy)
	dst = appendPeriscope(dst, f)
	dst = append(dst, '}')
	dst = appendStringField(dst, "node_name", f.NodeName)
	dst = appendTimeField(dst, "time", f.Time)
	return append(dst, '}')
}

// appendSummary appends the "Summary" field unless the flow has none. L3/L4
// summaries hold no characters that need escaping; an L7 summary quotes the
// record's text (a URL, a DNS name), escaped as it is appended.
func appendSummary(dst []byte, f *Flow) []byte {
	mark := len(dst)
	dst = appendKey(dst, "Summary")
	dst = append(dst, '"')
	body := len(dst)
	if f.L7 != nil {
		dst = appendL7Summary(dst, f.L7, appendEscaped)
	} else {
		dst = f.AppendSummary(dst)
	}
	if len(dst) == body {
		return dst[:mark]
	}
	return append(dst, '"')
}

// appendEnum appends an enum field: its name as a string, or its number when
// it has no name (as protojson does).
func appendEnum(dst []byte, key, name string) []byte {
	dst = appendKey(dst, key)
	if name != "" && (name[0] < '0' || name[0] > '9') {
		return appendString(dst, name)
	}
	return append(dst, name...)
}

func appendIP(dst []byte, ip *IP) []byte {
	if !ip.Source.IsValid() && !ip.Destination.IsValid() && ip.Version == IPNotUsed {
		return dst
	}
	dst = appendKey(dst, "IP")
	dst = append(dst, '{')
	dst = appendAddr(dst, "source", ip.Source)
	dst = appendAddr(dst, "destination", ip.Destination)
	if ip.Version != IPNotUsed {
		dst = appendEnum(dst, "ipVersion", ip.Version.String())
	}
	return append(dst, '}')
}

func appendAddr(dst []byte, key string, a netip.Addr) []byte {
	if !a.IsValid() {
		return dst
	}
	dst = appendKey(dst, key)
	dst = append(dst, '"')
	dst = a.AppendTo(dst)
	return append(dst, '"')
}

func appendL4(dst []byte, l4 *L4) []byte {
	var name string
	switch l4.Protocol {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMPv4, ProtoICMPv6:
		name = ProtocolName(l4.Protocol)
	default:
		return dst // Hubble's Layer4 has no other protocols
	}
	dst = appendKey(dst, "l4")
	dst = append(dst, '{')
	dst = appendKey(dst, name)
	dst = append(dst, '{')
	switch l4.Protocol {
	case ProtoICMPv4, ProtoICMPv6:
		dst = appendUintField(dst, "type", uint64(l4.ICMPType))
		dst = appendUintField(dst, "code", uint64(l4.ICMPCode))
	default:
		dst = appendUintField(dst, "source_port", uint64(l4.SourcePort))
		dst = appendUintField(dst, "destination_port", uint64(l4.DestinationPort))
		if l4.Protocol == ProtoTCP && l4.TCPFlags != 0 {
			dst = appendTCPFlags(dst, l4.TCPFlags)
		}
	}
	return append(dst, '}', '}')
}

// tcpFlagFields is Hubble's TCPFlags message in field order.
var tcpFlagFields = [...]struct {
	flag TCPFlags
	name string
}{
	{TCPFlagFIN, "FIN"}, {TCPFlagSYN, "SYN"}, {TCPFlagRST, "RST"},
	{TCPFlagPSH, "PSH"}, {TCPFlagACK, "ACK"}, {TCPFlagURG, "URG"},
	{TCPFlagECE, "ECE"}, {TCPFlagCWR, "CWR"}, {TCPFlagNS, "NS"},
}

func appendTCPFlags(dst []byte, flags TCPFlags) []byte {
	dst = appendKey(dst, "flags")
	dst = append(dst, '{')
	for _, fl := range tcpFlagFields {
		if flags&fl.flag != 0 {
			dst = appendKey(dst, fl.name)
			dst = append(dst, "true"...)
		}
	}
	return append(dst, '}')
}

func appendEndpoint(dst []byte, key string, ep *Endpoint) []byte {
	dst = appendKey(dst, key)
	dst = append(dst, '{')
	dst = appendUintField(dst, "ID", uint64(ep.ID))
	dst = appendUintField(dst, "identity", uint64(ep.Identity))
	dst = appendStringField(dst, "namespace", ep.Namespace)
	if len(ep.Labels) > 0 {
		dst = appendKey(dst, "labels")
		dst = appendStrings(dst, ep.Labels)
	}
	dst = appendStringField(dst, "pod_name", ep.PodName)
	if ep.Workload != "" {
		dst = appendKey(dst, "workloads")
		dst = append(dst, `[{"name":`...)
		dst = appendString(dst, ep.Workload)
		dst = append(dst, '}', ']')
	}
	return append(dst, '}')
}

// appendPolicies appends Hubble's repeated Policy field; Periscope knows only
// the deciding policy's name.
func appendPolicies(dst []byte, key string, refs []PolicyRef) []byte {
	if len(refs) == 0 {
		return dst
	}
	dst = appendKey(dst, key)
	dst = append(dst, '[')
	for i := range refs {
		p := &refs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		dst = appendStringField(dst, "name", p.Name)
		dst = appendStringField(dst, "namespace", p.Namespace)
		if p.Revision != 0 { // a uint64: a string in protojson
			dst = appendKey(dst, "revision")
			dst = append(dst, '"')
			dst = strconv.AppendUint(dst, p.Revision, 10)
			dst = append(dst, '"')
		}
		dst = appendStringField(dst, "kind", p.Kind)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendPeriscope appends the "periscope" extension object unless it would
// be empty.
func appendPeriscope(dst []byte, f *Flow) []byte {
	if f.Event == EventUnknown && f.StartTime.IsZero() && f.EndTime.IsZero() && f.Counters == (Counters{}) &&
		f.Process == (Process{}) && f.DestinationProcess == (Process{}) && f.InitiatorHook == TrafficDirectionUnknown &&
		!f.Paired() {
		return dst
	}
	dst = appendKey(dst, "periscope")
	dst = append(dst, '{')
	if f.Event != EventUnknown {
		dst = appendEnum(dst, "event", f.Event.String())
	}
	dst = appendTimeField(dst, "start_time", f.StartTime)
	dst = appendTimeField(dst, "end_time", f.EndTime)
	dst = appendCounters(dst, "forward", f.Counters.PacketsForward, f.Counters.BytesForward)
	dst = appendCounters(dst, "reply", f.Counters.PacketsReply, f.Counters.BytesReply)
	dst = appendProcess(dst, "process", &f.Process)
	if f.InitiatorHook != TrafficDirectionUnknown {
		dst = appendEnum(dst, "initiator_hook", f.InitiatorHook.String())
	}
	dst = appendProcess(dst, "destination_process", &f.DestinationProcess)
	if f.Paired() {
		dst = appendObservation(dst, "other_observation", &f.Other)
	}
	return append(dst, '}')
}

// appendProcess appends a process object unless p is zero.
func appendProcess(dst []byte, key string, p *Process) []byte {
	if *p == (Process{}) {
		return dst
	}
	dst = appendKey(dst, key)
	dst = append(dst, '{')
	dst = appendUintField(dst, "pid", uint64(p.PID))
	dst = appendStringField(dst, "comm", p.Comm)
	dst = appendUintField(dst, "cgroup_id", uint64(p.CgroupID))
	return append(dst, '}')
}

// appendObservation appends an observation point, its fields named as the
// flow's own.
func appendObservation(dst []byte, key string, o *Observation) []byte {
	dst = appendKey(dst, key)
	dst = append(dst, '{')
	dst = appendKey(dst, "interface")
	dst = append(dst, '{')
	dst = appendUintField(dst, "index", uint64(o.Interface.Index))
	dst = appendStringField(dst, "name", o.Interface.Name)
	dst = append(dst, '}')
	if o.InitiatorHook != TrafficDirectionUnknown {
		dst = appendEnum(dst, "initiator_hook", o.InitiatorHook.String())
	}
	if o.TrafficDirection != TrafficDirectionUnknown {
		dst = appendEnum(dst, "traffic_direction", o.TrafficDirection.String())
	}
	if o.Verdict != VerdictUnknown {
		dst = appendEnum(dst, "verdict", o.Verdict.String())
	}
	if o.DropReason != DropReasonUnknown {
		dst = appendUintField(dst, "drop_reason", uint64(o.DropReason))
		dst = appendEnum(dst, "drop_reason_desc", o.DropReason.String())
	}
	dst = appendCounters(dst, "forward", o.Counters.PacketsForward, o.Counters.BytesForward)
	dst = appendCounters(dst, "reply", o.Counters.PacketsReply, o.Counters.BytesReply)
	return append(dst, '}')
}

// appendCounters appends {"packets":N,"bytes":N}. Unlike protojson's uint64
// these are JSON numbers, not strings: they are Periscope's own fields.
func appendCounters(dst []byte, key string, packets, bytes uint64) []byte {
	if packets == 0 && bytes == 0 {
		return dst
	}
	dst = appendKey(dst, key)
	dst = append(dst, '{')
	dst = appendUintField(dst, "packets", packets)
	dst = appendUintField(dst, "bytes", bytes)
	return append(dst, '}')
}
