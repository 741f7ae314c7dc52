// Package api owns Periscope's flow record: the Go type every part of the
// pipeline passes around, its enums (named as in Hubble's flow.proto), and its
// wire form (one JSON object per line, shaped like Hubble's GetFlowsResponse).
//
// The record is a plain value with no pointers to per-event allocations, so the
// datapath can decode kernel events into a reused Flow without allocating.
// Strings and slices in Endpoint are shared, read-only references to the
// endpoint registry's data: never mutate them through a Flow.
package api

import (
	"net/netip"
	"strings"
	"time"
)

// Verdict is what happened to the traffic, as in Hubble's flow.Verdict.
type Verdict uint8

// Verdict values keep Hubble's numbering.
const (
	VerdictUnknown   Verdict = 0
	VerdictForwarded Verdict = 1
	VerdictDropped   Verdict = 2
	VerdictError     Verdict = 3
	VerdictAudit     Verdict = 4
	// VerdictRedirected and VerdictTranslated are Hubble's; Periscope reads
	// them (from Hubble's JSON) but produces neither.
	VerdictRedirected Verdict = 5
	// VerdictTraced marks a record observed at a trace point where no
	// verdict is reached: Periscope's SOCK records, the socket's own view of
	// a connection, as Hubble's SOCK trace events. The connection's policy
	// verdict is the L3_L4 record's.
	VerdictTraced     Verdict = 6
	VerdictTranslated Verdict = 7
)

// DropReason says why traffic was dropped (Hubble's drop_reason_desc).
type DropReason uint16

// Drop reasons keep Hubble's (Cilium's) numbering.
const (
	DropReasonUnknown      DropReason = 0
	DropReasonPolicyDenied DropReason = 133 // no allow rule matched
	DropReasonPolicyDeny   DropReason = 181 // an explicit deny rule matched
)

// FlowType is Hubble's flow.FlowType.
type FlowType uint8

// FlowType values keep Hubble's numbering.
const (
	FlowTypeUnknown FlowType = 0
	FlowTypeL3L4    FlowType = 1
	FlowTypeL7      FlowType = 2
	FlowTypeSock    FlowType = 3
)

// TrafficDirection is seen from the observed endpoint (Hubble's
// traffic_direction): EGRESS when the endpoint initiated the connection.
type TrafficDirection uint8

// TrafficDirection values keep Hubble's numbering.
const (
	TrafficDirectionUnknown TrafficDirection = 0
	TrafficDirectionIngress TrafficDirection = 1
	TrafficDirectionEgress  TrafficDirection = 2
)

// IPVersion is Hubble's flow.IPVersion.
type IPVersion uint8

// IPVersion values keep Hubble's numbering.
const (
	IPNotUsed IPVersion = 0
	IPv4      IPVersion = 1
	IPv6      IPVersion = 2
)

// IP protocol numbers carried in L4.Protocol.
const (
	ProtoICMPv4 uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// TCPFlags is a bit set of the TCP flags seen; the bits match the TCP header
// (FIN is bit 0 ... CWR is bit 7), NS is bit 8.
type TCPFlags uint16

// TCP flag bits.
const (
	TCPFlagFIN TCPFlags = 1 << iota
	TCPFlagSYN
	TCPFlagRST
	TCPFlagPSH
	TCPFlagACK
	TCPFlagURG
	TCPFlagECE
	TCPFlagCWR
	TCPFlagNS
)

// EventKind says why this record was emitted for its connection.
type EventKind uint8

// EventKind values. They are Periscope's own (Hubble has one event per packet;
// Periscope aggregates a connection and reports it at these moments).
const (
	EventUnknown  EventKind = 0
	EventStart    EventKind = 1 // first packet of a connection
	EventState    EventKind = 2 // the connection's verdict changed (a new policy revision re-judged it)
	EventPeriodic EventKind = 3 // a long connection's periodic report
	EventEnd      EventKind = 4 // the connection ended (TCP close, or idle timeout)
	EventSock     EventKind = 5 // a socket closed whose connection no other record holds
)

// Endpoint is one side of a flow (Hubble's flow.Endpoint).
type Endpoint struct {
	ID        uint32   // local endpoint id; 0 when not a local endpoint
	Identity  uint32   // numeric security identity
	Namespace string   // namespace of the workload
	Labels    []string // "source:key=value", sorted, e.g. "k8s:app=frontend"
	PodName   string   // endpoint (pod) name
	Workload  string   // workload name (defaults to the pod name's app label)
}

// IP is the L3 part (Hubble's flow.IP).
type IP struct {
	Source      netip.Addr
	Destination netip.Addr
	Version     IPVersion
}

// L4 is the L4 part; which fields apply depends on Protocol.
type L4 struct {
	Protocol        uint8 // ProtoTCP, ProtoUDP, ProtoICMPv4, ProtoICMPv6, ProtoSCTP
	SourcePort      uint16
	DestinationPort uint16
	TCPFlags        TCPFlags // flags seen on the connection so far (both ways)
	ICMPType        uint8
	ICMPCode        uint8
}

// Counters are exact per-connection packet and byte counts. Forward is the
// direction from the connection's initiator (Source) to its responder.
type Counters struct {
	PacketsForward uint64
	BytesForward   uint64
	PacketsReply   uint64
	BytesReply     uint64
}

// Process is a local process behind a connection: the owner of one of its
// sockets (from the sock tracepoint).
type Process struct {
	PID      uint32
	Comm     string
	CgroupID uint64
}

// Interface is the network interface the flow was observed on.
type Interface struct {
	Index uint32
	Name  string
}

// Flow is one flow record. Source is always the connection's initiator,
// except in an L7 RESPONSE, which like Hubble's goes from the server back to
// the client, with IsReply set.
type Flow struct {
	Time             time.Time // when this record was produced (the event time)
	UUID             [16]byte
	Verdict          Verdict
	DropReason       DropReason
	IP               IP
	L4               L4
	Source           Endpoint
	Destination      Endpoint
	Type             FlowType
	TrafficDirection TrafficDirection
	NodeName         string
	IsReply          bool
	Interface        Interface

	// Periscope extensions beyond Hubble's record.
	Event     EventKind
	StartTime time.Time // first packet of the connection
	EndTime   time.Time // last packet seen so far
	Counters  Counters
	// Process is the local process on the Source side (the initiator's
	// socket) when the record merged that socket's close; of a SOCK record,
	// the socket's process whichever side it is.
	Process Process
	// DestinationProcess is the local process on the Destination side (the
	// responder's socket) when the record merged that socket's close.
	DestinationProcess Process

	// Other is the connection's second observation point on this node, when
	// the datapath saw it at two interfaces (the veth of the client and that
	// of the server, or a host interface and a pod's veth): the record is
	// then the one flow of the connection, with each point's verdict and
	// counts. The record's own Interface, InitiatorHook, TrafficDirection,
	// Verdict, DropReason and Counters are those of the point with the more
	// severe verdict (DROPPED, then AUDIT), the initiator's side when they
	// agree; each side's policy names are in the policy fields of its
	// direction. Zero (Interface.Index 0) when the connection was seen at one
	// interface. Observations splits the record into Hubble's
	// one-per-point records.
	Other Observation

	// InitiatorHook is the TC hook of Interface at which the initiator's
	// packets were seen: Ingress when they entered the node through
	// Interface, Egress when they left through it; Unknown for SOCK flows.
	// The datapath sets it; the collector derives TrafficDirection from it
	// once it knows which side of Interface the local endpoint is on.
	InitiatorHook TrafficDirection

	// Policy attribution (the deciding policies), filled by the datapath.
	// The slices are shared by every flow of a policy revision: read-only.
	IngressAllowedBy []PolicyRef
	EgressAllowedBy  []PolicyRef
	IngressDeniedBy  []PolicyRef
	EgressDeniedBy   []PolicyRef

	// SourceNames and DestinationNames are the DNS names the other side's
	// endpoint resolved to this side's address (Hubble's source_names,
	// destination_names), without the final dot. Shared with the FQDN
	// cache: never mutate them through a Flow.
	SourceNames      []string
	DestinationNames []string

	// L7 is the application-layer record of an L7 flow (Type FlowTypeL7);
	// nil for every other flow. It is shared, never mutated (see L7).
	L7 *L7
}

// PolicyRef names a policy that decided a flow, as Hubble's flow.Policy:
// its name, namespace (empty for a clusterwide policy), kind
// (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, NetworkPolicy)
// and the policy revision that applied it.
type PolicyRef struct {
	Name      string
	Namespace string
	Kind      string
	Revision  uint64
}

// Ref is "namespace/name", or "name" for a clusterwide policy.
func (p PolicyRef) Ref() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// ParsePolicyRef reads a Ref ("namespace/name" or "name") of kind.
func ParsePolicyRef(ref, kind string) PolicyRef {
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		return PolicyRef{Namespace: ns, Name: name, Kind: kind}
	}
	return PolicyRef{Name: ref, Kind: kind}
}
