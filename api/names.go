package api

import (
	"fmt"
	"strconv"
	"strings"
)

// Names of the enums as they appear on the wire; they are Hubble's
// flow.proto enum value names so that tools reading Hubble's JSON read ours.
var (
	verdictNames = [...]string{
		VerdictUnknown:    "VERDICT_UNKNOWN",
		VerdictForwarded:  "FORWARDED",
		VerdictDropped:    "DROPPED",
		VerdictError:      "ERROR",
		VerdictAudit:      "AUDIT",
		VerdictRedirected: "REDIRECTED",
		VerdictTraced:     "TRACED",
		VerdictTranslated: "TRANSLATED",
	}
	flowTypeNames = [...]string{
		FlowTypeUnknown: "UNKNOWN_TYPE",
		FlowTypeL3L4:    "L3_L4",
		FlowTypeL7:      "L7",
		FlowTypeSock:    "SOCK",
	}
	trafficDirectionNames = [...]string{
		TrafficDirectionUnknown: "TRAFFIC_DIRECTION_UNKNOWN",
		TrafficDirectionIngress: "INGRESS",
		TrafficDirectionEgress:  "EGRESS",
	}
	ipVersionNames = [...]string{
		IPNotUsed: "IP_NOT_USED",
		IPv4:      "IPv4",
		IPv6:      "IPv6",
	}
	eventKindNames = [...]string{
		EventUnknown:  "unknown",
		EventStart:    "start",
		EventState:    "state",
		EventPeriodic: "periodic",
		EventEnd:      "end",
		EventSock:     "sock",
	}
)

// dropReasonNames holds the drop reasons Periscope produces; others are
// printed as numbers.
var dropReasonNames = map[DropReason]string{
	DropReasonUnknown:      "DROP_REASON_UNKNOWN",
	DropReasonPolicyDenied: "POLICY_DENIED",
	DropReasonPolicyDeny:   "POLICY_DENY",
}

// enumName returns names[v], or "" when v has no name.
func enumName(names []string, v int) string {
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return ""
}

// parseEnum finds s (case-insensitive) in names, or accepts a decimal number
// that fits max; what names the enum in errors.
func parseEnum(what string, names []string, s string, max uint64) (uint64, error) {
	for i, n := range names {
		if strings.EqualFold(n, s) {
			return uint64(i), nil
		}
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n <= max {
		return n, nil
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(names, ", "))
}

// String returns Hubble's name of the verdict, e.g. "FORWARDED", or the number
// for a value Hubble has no name for here.
func (v Verdict) String() string {
	if n := enumName(verdictNames[:], int(v)); n != "" {
		return n
	}
	return strconv.Itoa(int(v))
}

// ParseVerdict reads a verdict name (case-insensitive, e.g. "dropped") or number.
func ParseVerdict(s string) (Verdict, error) {
	n, err := parseEnum("verdict", verdictNames[:], s, 255)
	return Verdict(n), err
}

// String returns Hubble's name of the flow type, e.g. "L3_L4".
func (t FlowType) String() string {
	if n := enumName(flowTypeNames[:], int(t)); n != "" {
		return n
	}
	return strconv.Itoa(int(t))
}

// ParseFlowType reads a flow type name (case-insensitive, e.g. "l3_l4") or number.
func ParseFlowType(s string) (FlowType, error) {
	n, err := parseEnum("flow type", flowTypeNames[:], s, 255)
	return FlowType(n), err
}

// String returns Hubble's name of the direction, e.g. "EGRESS".
func (d TrafficDirection) String() string {
	if n := enumName(trafficDirectionNames[:], int(d)); n != "" {
		return n
	}
	return strconv.Itoa(int(d))
}

// ParseTrafficDirection reads a direction name (case-insensitive) or number.
func ParseTrafficDirection(s string) (TrafficDirection, error) {
	n, err := parseEnum("traffic direction", trafficDirectionNames[:], s, 255)
	return TrafficDirection(n), err
}

// String returns Hubble's name of the IP version, e.g. "IPv4".
func (v IPVersion) String() string {
	if n := enumName(ipVersionNames[:], int(v)); n != "" {
		return n
	}
	return strconv.Itoa(int(v))
}

// ParseIPVersion reads an IP version name (case-insensitive) or number.
func ParseIPVersion(s string) (IPVersion, error) {
	n, err := parseEnum("IP version", ipVersionNames[:], s, 255)
	return IPVersion(n), err
}

// String returns Periscope's name of the event kind, e.g. "start".
func (k EventKind) String() string {
	if n := enumName(eventKindNames[:], int(k)); n != "" {
		return n
	}
	return strconv.Itoa(int(k))
}

// ParseEventKind reads an event kind name (case-insensitive) or number.
func ParseEventKind(s string) (EventKind, error) {
	n, err := parseEnum("event kind", eventKindNames[:], s, 255)
	return EventKind(n), err
}

// String returns Hubble's name of the drop reason, e.g. "POLICY_DENIED", or
// the number for reasons Periscope does not produce.
func (r DropReason) String() string {
	if n, ok := dropReasonNames[r]; ok {
		return n
	}
	return strconv.Itoa(int(r))
}

// ParseDropReason reads a drop reason name (case-insensitive) or number.
func ParseDropReason(s string) (DropReason, error) {
	for r, n := range dropReasonNames {
		if strings.EqualFold(n, s) {
			return r, nil
		}
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return DropReason(n), nil
	}
	return 0, fmt.Errorf("unknown drop reason %q", s)
}

// ProtocolName returns the name Hubble uses for an IP protocol ("TCP", "UDP",
// "ICMPv4", "ICMPv6", "SCTP"), or the decimal number for any other protocol.
func ProtocolName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMPv4:
		return "ICMPv4"
	case ProtoICMPv6:
		return "ICMPv6"
	case ProtoSCTP:
		return "SCTP"
	}
	return strconv.Itoa(int(p))
}

// tcpFlagOrder is the order in which Hubble's summary lists TCP flags.
var tcpFlagOrder = [...]struct {
	flag TCPFlags
	name string
}{
	{TCPFlagSYN, "SYN"}, {TCPFlagACK, "ACK"}, {TCPFlagRST, "RST"},
	{TCPFlagFIN, "FIN"}, {TCPFlagPSH, "PSH"}, {TCPFlagURG, "URG"},
	{TCPFlagECE, "ECE"}, {TCPFlagCWR, "CWR"}, {TCPFlagNS, "NS"},
}

// String lists the set flags the way Hubble's summary does: "SYN, ACK".
func (f TCPFlags) String() string {
	return string(f.AppendNames(nil))
}

// AppendNames appends f.String() to dst without allocating.
func (f TCPFlags) AppendNames(dst []byte) []byte {
	first := true
	for _, fl := range tcpFlagOrder {
		if f&fl.flag == 0 {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		dst = append(dst, fl.name...)
		first = false
	}
	return dst
}

// ParseTCPFlag reads one flag name, case-insensitive ("syn" gives TCPFlagSYN).
func ParseTCPFlag(s string) (TCPFlags, error) {
	for _, fl := range tcpFlagOrder {
		if strings.EqualFold(fl.name, s) {
			return fl.flag, nil
		}
	}
	return 0, fmt.Errorf("unknown TCP flag %q (want SYN, ACK, RST, FIN, PSH, URG, ECE, CWR or NS)", s)
}
