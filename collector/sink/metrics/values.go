package metrics

import (
	"strconv"

	"github.com/periscope-dev/periscope/api"
	"go.opentelemetry.io/otel/attribute"
)

// protocolValue is an IP protocol: Prometheus' protocol label ("TCP",
// "ICMPv6"), OpenTelemetry's network.transport (see OTelTransport).
func protocolValue(p uint8) LabelValue {
	return LabelValue{Prom: api.ProtocolName(p), OTel: attribute.StringValue(OTelTransport(p))}
}

// ipVersionValue is an IP version: Prometheus' ip_version label ("IPv4"),
// OpenTelemetry's network.type ("ipv4").
func ipVersionValue(v api.IPVersion) LabelValue {
	return LabelValue{Prom: v.String(), OTel: attribute.StringValue(OTelNetworkType(v))}
}

// OTelTransport is network.transport's value for an IP protocol: the
// semantic conventions' tcp and udp, lower-case names (icmp, sctp) or the
// decimal number for others, "" for none. ICMPv4 and ICMPv6 are both
// "icmp"; network.type tells them apart.
func OTelTransport(p uint8) string {
	switch p {
	case api.ProtoTCP:
		return "tcp"
	case api.ProtoUDP:
		return "udp"
	case api.ProtoICMPv4, api.ProtoICMPv6:
		return "icmp"
	case api.ProtoSCTP:
		return "sctp"
	case 0:
		return ""
	}
	return strconv.Itoa(int(p))
}

// OTelNetworkType is network.type's value: ipv4, ipv6, or "" when unknown.
func OTelNetworkType(v api.IPVersion) string {
	switch v {
	case api.IPv4:
		return "ipv4"
	case api.IPv6:
		return "ipv6"
	}
	return ""
}
