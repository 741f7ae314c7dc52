package otel

import (
	"strconv"

	"github.com/periscope-dev/periscope/api"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Periscope's own attribute keys, for what the semantic conventions have no
// name for.
const (
	KeyVerdict          = attribute.Key("periscope.verdict")
	KeyTrafficDirection = attribute.Key("periscope.traffic_direction")
	KeyDropReason       = attribute.Key("periscope.drop_reason")
	KeyFlowType         = attribute.Key("periscope.flow_type")
	KeyEvent            = attribute.Key("periscope.event")
	KeyPolicyMatch      = attribute.Key("periscope.policy.match")
	KeySource           = attribute.Key("periscope.source")      // traffic metrics: the source's context value
	KeyDestination      = attribute.Key("periscope.destination") // traffic metrics: the destination's context value
	KeyLostSource       = attribute.Key("periscope.lost_events.source")
	KeySink             = attribute.Key("periscope.sink")

	KeyPacketsForward = attribute.Key("periscope.packets.forward")
	KeyBytesForward   = attribute.Key("periscope.bytes.forward")
	KeyPacketsReply   = attribute.Key("periscope.packets.reply")
	KeyBytesReply     = attribute.Key("periscope.bytes.reply")
	KeyTCPFlags       = attribute.Key("periscope.tcp.flags")
	KeyICMPType       = attribute.Key("periscope.icmp.type")
	KeyICMPCode       = attribute.Key("periscope.icmp.code")
	KeyIsReply        = attribute.Key("periscope.is_reply")
	KeyFlowID         = attribute.Key("periscope.flow.id")
	KeyStartTime      = attribute.Key("periscope.start_time")
	KeyNodeName       = attribute.Key("periscope.node_name")
	KeyCgroupID       = attribute.Key("periscope.process.cgroup_id")

	KeyIngressAllowedBy = attribute.Key("periscope.policy.ingress_allowed_by")
	KeyEgressAllowedBy  = attribute.Key("periscope.policy.egress_allowed_by")
	KeyIngressDeniedBy  = attribute.Key("periscope.policy.ingress_denied_by")
	KeyEgressDeniedBy   = attribute.Key("periscope.policy.egress_denied_by")
)

// endpointKeys are the keys of one side's endpoint attributes in log records.
type endpointKeys struct {
	namespace, pod, workload, identity, id, labels attribute.Key
}

func newEndpointKeys(side string) endpointKeys {
	p := "periscope." + side + "."
	return endpointKeys{
		namespace: attribute.Key(p + "namespace"),
		pod:       attribute.Key(p + "pod"),
		workload:  attribute.Key(p + "workload"),
		identity:  attribute.Key(p + "identity"),
		id:        attribute.Key(p + "endpoint_id"),
		labels:    attribute.Key(p + "labels"),
	}
}

var (
	sourceKeys      = newEndpointKeys("source")
	destinationKeys = newEndpointKeys("destination")
)

// overflowSet is the attribute set of the series that counts whatever lies
// beyond a metric's cap; it is the SDK's own overflow attribute.
var overflowSet = attribute.NewSet(attribute.Bool("otel.metric.overflow", true))

// transport is network.transport's value for an IP protocol: the semantic
// conventions' tcp and udp, and lower-case names (icmp, sctp) or the decimal
// number for others. ICMPv4 and ICMPv6 are both "icmp"; network.type tells
// them apart.
func transport(p uint8) attribute.KeyValue {
	switch p {
	case api.ProtoTCP:
		return semconv.NetworkTransportTCP
	case api.ProtoUDP:
		return semconv.NetworkTransportUDP
	case api.ProtoICMPv4, api.ProtoICMPv6:
		return semconv.NetworkTransportKey.String("icmp")
	case api.ProtoSCTP:
		return semconv.NetworkTransportKey.String("sctp")
	case 0:
		return semconv.NetworkTransportKey.String("")
	}
	return semconv.NetworkTransportKey.String(strconv.Itoa(int(p)))
}

// networkType is network.type's value: ipv4, ipv6, or "" when unknown.
func networkType(v api.IPVersion) attribute.KeyValue {
	switch v {
	case api.IPv4:
		return semconv.NetworkTypeIPv4
	case api.IPv6:
		return semconv.NetworkTypeIPv6
	}
	return semconv.NetworkTypeKey.String("")
}

// hasPorts reports whether the protocol has the ports api.L4 carries.
func hasPorts(p uint8) bool {
	return p == api.ProtoTCP || p == api.ProtoUDP || p == api.ProtoSCTP
}
