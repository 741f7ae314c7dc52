package otel

import (
	"math"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Periscope's own attribute keys, for what the semantic conventions have no
// name for. The keys metrics carry too are the metric model's
// (collector/sink/metrics).
const (
	KeyVerdict          = metrics.KeyVerdict
	KeyTrafficDirection = metrics.KeyTrafficDirection
	KeyDropReason       = metrics.KeyDropReason
	KeyFlowType         = metrics.KeyFlowType
	KeyEvent            = attribute.Key("periscope.event")

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

// transport is network.transport for an IP protocol, as the metrics have it.
func transport(p uint8) attribute.KeyValue {
	return semconv.NetworkTransportKey.String(metrics.OTelTransport(p))
}

// networkType is network.type for an IP version, as the metrics have it.
func networkType(v api.IPVersion) attribute.KeyValue {
	return semconv.NetworkTypeKey.String(metrics.OTelNetworkType(v))
}

// toInt64 converts a count for an Int64 attribute or instrument, saturating.
func toInt64(v uint64) int64 {
	return int64(min(v, math.MaxInt64))
}
