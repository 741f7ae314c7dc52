package api

import "strconv"

// icmpType names one ICMP type and, where Hubble's summary shows them, its codes.
type icmpType struct {
	name  string
	codes []string
}

// ICMP type and code names as in the summaries Hubble prints (gopacket's).
var (
	icmpv4Types = map[uint8]icmpType{
		0: {name: "EchoReply"},
		3: {name: "DestinationUnreachable", codes: []string{
			"Net", "Host", "Protocol", "Port", "FragmentationNeeded", "SourceRoutingFailed",
			"NetUnknown", "HostUnknown", "SourceIsolated", "NetAdminProhibited",
			"HostAdminProhibited", "NetTOS", "HostTOS", "CommAdminProhibited",
			"HostPrecedence", "PrecedenceCutoff"}},
		4:  {name: "SourceQuench"},
		5:  {name: "Redirect", codes: []string{"Network", "Host", "TOS+Network", "TOS+Host"}},
		8:  {name: "EchoRequest"},
		9:  {name: "RouterAdvertisement"},
		10: {name: "RouterSolicitation"},
		11: {name: "TimeExceeded", codes: []string{"TTLExceeded", "FragmentReassemblyTimeExceeded"}},
		12: {name: "ParameterProblem", codes: []string{"PointerIndicatesError", "MissingOption", "BadLength"}},
		13: {name: "TimestampRequest"},
		14: {name: "TimestampReply"},
		15: {name: "InfoRequest"},
		16: {name: "InfoReply"},
		17: {name: "AddressMaskRequest"},
		18: {name: "AddressMaskReply"},
	}
	icmpv6Types = map[uint8]icmpType{
		1: {name: "DestinationUnreachable", codes: []string{
			"NoRouteToDst", "AdminProhibited", "BeyondScopeOfSrc", "AddressUnreachable",
			"PortUnreachable", "SrcAddressFailedPolicy", "RejectRouteToDst"}},
		2:   {name: "PacketTooBig"},
		3:   {name: "TimeExceeded", codes: []string{"HopLimitExceeded", "FragmentReassemblyTimeExceeded"}},
		4:   {name: "ParameterProblem", codes: []string{"ErroneousHeaderField", "UnrecognizedNextHeader", "UnrecognizedIPv6Option"}},
		128: {name: "EchoRequest"},
		129: {name: "EchoReply"},
		133: {name: "RouterSolicitation"},
		134: {name: "RouterAdvertisement"},
		135: {name: "NeighborSolicitation"},
		136: {name: "NeighborAdvertisement"},
		137: {name: "Redirect"},
	}
)

// Summary returns the one-line description Hubble puts in a flow's Summary
// field: "TCP Flags: SYN, ACK" ("TCP" when no flag was seen), "UDP", "ICMPv4 EchoRequest", "IPv6", ...;
// for an L7 flow its record's, e.g. "HTTP/1.1 200 12ms (GET http://backend/)".
func (f *Flow) Summary() string {
	return string(f.AppendSummary(nil))
}

// AppendSummary appends f.Summary() to dst without allocating.
func (f *Flow) AppendSummary(dst []byte) []byte {
	if f.L7 != nil {
		return appendL7Summary(dst, f.L7, appendRaw)
	}
	switch f.L4.Protocol {
	case ProtoTCP:
		if f.L4.TCPFlags == 0 { // e.g. a SOCK flow: no packets seen
			return append(dst, "TCP"...)
		}
		dst = append(dst, "TCP Flags: "...)
		return f.L4.TCPFlags.AppendNames(dst)
	case ProtoUDP:
		return append(dst, "UDP"...)
	case ProtoSCTP:
		return append(dst, "SCTP"...)
	case ProtoICMPv4:
		dst = append(dst, "ICMPv4 "...)
		return appendICMP(dst, icmpv4Types, f.L4.ICMPType, f.L4.ICMPCode)
	case ProtoICMPv6:
		dst = append(dst, "ICMPv6 "...)
		return appendICMP(dst, icmpv6Types, f.L4.ICMPType, f.L4.ICMPCode)
	case 0:
		if f.IP.Version != IPNotUsed {
			return append(dst, f.IP.Version.String()...)
		}
		return dst
	}
	return append(dst, ProtocolName(f.L4.Protocol)...)
}

// appendICMP appends "Type" or "Type(Code)" like gopacket's TypeCode.String.
func appendICMP(dst []byte, types map[uint8]icmpType, typ, code uint8) []byte {
	t, ok := types[typ]
	if !ok {
		dst = strconv.AppendUint(dst, uint64(typ), 10)
		dst = append(dst, '(')
		dst = strconv.AppendUint(dst, uint64(code), 10)
		return append(dst, ')')
	}
	dst = append(dst, t.name...)
	if t.codes == nil {
		return dst
	}
	dst = append(dst, '(')
	if int(code) < len(t.codes) {
		dst = append(dst, t.codes[code]...)
	} else {
		dst = append(dst, "Code: "...)
		dst = strconv.AppendUint(dst, uint64(code), 10)
	}
	return append(dst, ')')
}
