package api

// TracePoint is one of Cilium's trace observation points: the sub-type of
// its monitor's trace events, which Hubble carries as a trace flow's
// CiliumEventType.sub_type (and TraceObservationPoint) and `hubble observe
// --type trace:<name>` filters on. Periscope's observation points (an
// interface and the hook the initiator's packets were seen at) are four of
// them (Flow.TracePoint); the others name points Periscope has no hook at.
type TracePoint uint8

// Cilium's trace observation points, numbered as its monitor numbers them.
const (
	TraceToEndpoint   TracePoint = 0  // delivered to a local endpoint
	TraceToProxy      TracePoint = 1  // redirected to a proxy
	TraceToHost       TracePoint = 2  // to the host's own interface (cilium_host)
	TraceToStack      TracePoint = 3  // passed to the host's network stack
	TraceToOverlay    TracePoint = 4  // into a tunnel
	TraceFromEndpoint TracePoint = 5  // sent by a local endpoint
	TraceFromProxy    TracePoint = 6  // sent by a proxy
	TraceFromHost     TracePoint = 7  // from the host's own interface (cilium_host)
	TraceFromStack    TracePoint = 8  // from the host's network stack
	TraceFromOverlay  TracePoint = 9  // out of a tunnel
	TraceFromNetwork  TracePoint = 10 // arrived at a host interface from the network
	TraceToNetwork    TracePoint = 11 // left through a host interface to the network
	TraceFromCrypto   TracePoint = 12 // decrypted
	TraceToCrypto     TracePoint = 13 // to be encrypted
)

// tracePointNames are the points' names as Cilium's monitor and `hubble
// observe --type trace:<name>` spell them, by number.
var tracePointNames = [...]string{
	TraceToEndpoint: "to-endpoint", TraceToProxy: "to-proxy", TraceToHost: "to-host", TraceToStack: "to-stack",
	TraceToOverlay: "to-overlay", TraceFromEndpoint: "from-endpoint", TraceFromProxy: "from-proxy",
	TraceFromHost: "from-host", TraceFromStack: "from-stack", TraceFromOverlay: "from-overlay",
	TraceFromNetwork: "from-network", TraceToNetwork: "to-network", TraceFromCrypto: "from-crypto",
	TraceToCrypto: "to-crypto",
}

// String is the point's name ("to-endpoint"), or "" for a number Cilium
// has no point of.
func (p TracePoint) String() string {
	if int(p) < len(tracePointNames) {
		return tracePointNames[p]
	}
	return ""
}

// ParseTracePoint reads a point's name ("from-endpoint").
func ParseTracePoint(name string) (TracePoint, bool) {
	for p, n := range tracePointNames {
		if n == name {
			return TracePoint(p), true
		}
	}
	return 0, false
}

// TracePoint is the trace observation point of the record's own
// observation point, as Cilium would report the initiator's packets there:
//
//   - from-endpoint: they entered the node from a local endpoint's veth
//     (InitiatorHook ingress at the Source endpoint's interface);
//   - to-endpoint: they left the node into a local endpoint's veth
//     (InitiatorHook egress at the Destination endpoint's interface);
//   - from-network, to-network: the same at an interface that is no
//     endpoint's (a host interface).
//
// A local endpoint's ID is its host-side veth's index (docs/ENDPOINTS.md).
// ok is false for a record seen at no interface hook: a sock record, an L7
// record. A record of two points (Paired) is split by Observations into
// records whose TracePoint is each point's.
func (f *Flow) TracePoint() (p TracePoint, ok bool) {
	if f.Interface.Index == 0 || f.Type == FlowTypeSock || f.Type == FlowTypeL7 {
		return 0, false
	}
	switch f.InitiatorHook {
	case TrafficDirectionIngress:
		if f.Source.ID == f.Interface.Index {
			return TraceFromEndpoint, true
		}
		return TraceFromNetwork, true
	case TrafficDirectionEgress:
		if f.Destination.ID == f.Interface.Index {
			return TraceToEndpoint, true
		}
		return TraceToNetwork, true
	}
	return 0, false
}
