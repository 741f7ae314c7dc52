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
	KeyInitiatorHook  = attribute.Key("periscope.initiator_hook")

	// The responder's local process, when the record merged its socket's
	// close (api.Flow.DestinationProcess).
	KeyDestinationPID      = attribute.Key("periscope.destination_process.pid")
	KeyDestinationComm     = attribute.Key("periscope.destination_process.comm")
	KeyDestinationCgroupID = attribute.Key("periscope.destination_process.cgroup_id")

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

// The second observation point of a record that merged two
// (api.Flow.Other), named as the JSON's periscope.other_observation: the
// same fields as the record's own point, whose attributes are those of
// the record (network.interface.name, periscope.initiator_hook,
// periscope.traffic_direction, ...).
const (
	KeyOtherInterfaceName    = attribute.Key("periscope.other_observation.interface.name")
	KeyOtherInterfaceIndex   = attribute.Key("periscope.other_observation.interface.index")
	KeyOtherInitiatorHook    = attribute.Key("periscope.other_observation.initiator_hook")
	KeyOtherTrafficDirection = attribute.Key("periscope.other_observation.traffic_direction")
	KeyOtherVerdict          = attribute.Key("periscope.other_observation.verdict")
	KeyOtherDropReason       = attribute.Key("periscope.other_observation.drop_reason")
	KeyOtherPacketsForward   = attribute.Key("periscope.other_observation.packets.forward")
	KeyOtherBytesForward     = attribute.Key("periscope.other_observation.bytes.forward")
	KeyOtherPacketsReply     = attribute.Key("periscope.other_observation.packets.reply")
	KeyOtherBytesReply       = attribute.Key("periscope.other_observation.bytes.reply")
)

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
