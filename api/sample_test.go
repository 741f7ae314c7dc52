package api

import (
	"net/netip"
	"time"
)

// sampleFlows are the flows the JSON tests share; the golden file holds their
// wire form in this order.
func sampleFlows() map[string]*Flow {
	t0 := time.Date(2026, 11, 23, 9, 30, 14, 123456789, time.UTC)
	return map[string]*Flow{
		"tcp_forwarded": {
			Time:    t0,
			UUID:    [16]byte{0x3f, 0x2a, 0x1b, 0x0c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8},
			Verdict: VerdictForwarded,
			IP: IP{
				Source:      netip.MustParseAddr("198.18.0.2"),
				Destination: netip.MustParseAddr("198.18.0.3"),
				Version:     IPv4,
			},
			L4: L4{Protocol: ProtoTCP, SourcePort: 43210, DestinationPort: 8080, TCPFlags: TCPFlagSYN | TCPFlagACK},
			Source: Endpoint{ID: 12, Identity: 1234, Namespace: "default",
				Labels:  []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=default"},
				PodName: "frontend", Workload: "frontend"},
			Destination: Endpoint{ID: 13, Identity: 5678, Namespace: "default",
				Labels: []string{"k8s:app=backend"}, PodName: "backend"},
			Type:             FlowTypeL3L4,
			TrafficDirection: TrafficDirectionEgress,
			NodeName:         "node1",
			Interface:        Interface{Index: 7, Name: "lxc-frontend"},
			InitiatorHook:    TrafficDirectionIngress,
			Event:            EventState,
			StartTime:        t0.Add(-2 * time.Second),
			EndTime:          t0,
			Counters:         Counters{PacketsForward: 3, BytesForward: 180, PacketsReply: 2, BytesReply: 120},
			EgressAllowedBy:  []PolicyRef{{Name: "allow-frontend", Namespace: "default", Kind: "CiliumNetworkPolicy", Revision: 7}},
		},
		"tcp_policy_denied": {
			Time:             t0.Add(time.Millisecond).Truncate(time.Millisecond),
			Verdict:          VerdictDropped,
			DropReason:       DropReasonPolicyDenied,
			IP:               IP{Source: netip.MustParseAddr("198.18.0.4"), Destination: netip.MustParseAddr("198.18.0.3"), Version: IPv4},
			L4:               L4{Protocol: ProtoTCP, SourcePort: 50000, DestinationPort: 8080, TCPFlags: TCPFlagSYN},
			Source:           Endpoint{Identity: 2, Labels: []string{"reserved:world"}},
			Destination:      Endpoint{ID: 13, Identity: 5678, Namespace: "default", PodName: "backend"},
			Type:             FlowTypeL3L4,
			TrafficDirection: TrafficDirectionIngress,
			NodeName:         "node1",
			Event:            EventStart,
			IngressDeniedBy:  []PolicyRef{{Name: "deny-world", Kind: "CiliumClusterwideNetworkPolicy", Revision: 12}},
		},
		"udp_ipv6_reply": {
			Time:        t0.Truncate(time.Microsecond),
			Verdict:     VerdictForwarded,
			IP:          IP{Source: netip.MustParseAddr("fd00::2"), Destination: netip.MustParseAddr("fd00::a"), Version: IPv6},
			L4:          L4{Protocol: ProtoUDP, SourcePort: 53, DestinationPort: 40000},
			Source:      Endpoint{Namespace: "kube-system", PodName: "coredns-5d78c9869d-abcde"},
			Destination: Endpoint{Namespace: "default", PodName: "frontend"},
			Type:        FlowTypeL3L4,
			NodeName:    "node2",
			IsReply:     true,
			Event:       EventEnd,
			Counters:    Counters{PacketsForward: 1, BytesForward: 60},
		},
		"icmpv4_echo_request": {
			Time:    t0.Truncate(time.Second),
			Verdict: VerdictAudit,
			IP:      IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"), Version: IPv4},
			L4:      L4{Protocol: ProtoICMPv4, ICMPType: 8},
			Type:    FlowTypeL3L4,
		},
		"sock_process": {
			Time:    t0,
			Verdict: VerdictForwarded,
			IP:      IP{Source: netip.MustParseAddr("127.0.0.1"), Destination: netip.MustParseAddr("127.0.0.1"), Version: IPv4},
			L4:      L4{Protocol: ProtoTCP, SourcePort: 5555, DestinationPort: 4244},
			Type:    FlowTypeSock,
			Event:   EventSock,
			Process: Process{PID: 4242, Comm: "curl \"quoted\"\n", CgroupID: 9001},
		},
		"empty": {},
		"http_request": {
			Time:             t0,
			UUID:             [16]byte{0x11, 15: 1},
			Verdict:          VerdictForwarded,
			IP:               IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: IPv4},
			L4:               L4{Protocol: ProtoTCP, SourcePort: 43210, DestinationPort: 8080},
			Source:           Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend"},
			Destination:      Endpoint{Identity: 5678, Namespace: "default", PodName: "backend"},
			Type:             FlowTypeL7,
			TrafficDirection: TrafficDirectionEgress,
			NodeName:         "node1",
			L7: &L7{Type: L7TypeRequest, HTTP: &HTTP{Method: "PUT", URL: `http://backend:8080/applicants/_create/103294?q="x"`,
				Protocol: "HTTP/1.1", Headers: []HTTPHeader{{Key: "accept", Value: "*/*"}, {Key: "x-empty"}}}},
		},
		"http_response": {
			Time:             t0.Add(12 * time.Millisecond),
			UUID:             [16]byte{0x11, 15: 2},
			Verdict:          VerdictForwarded,
			IP:               IP{Source: netip.MustParseAddr("198.18.0.3"), Destination: netip.MustParseAddr("198.18.0.2"), Version: IPv4},
			L4:               L4{Protocol: ProtoTCP, SourcePort: 8080, DestinationPort: 43210},
			Source:           Endpoint{Identity: 5678, Namespace: "default", PodName: "backend"},
			Destination:      Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend"},
			Type:             FlowTypeL7,
			TrafficDirection: TrafficDirectionEgress,
			NodeName:         "node1",
			IsReply:          true,
			L7: &L7{Type: L7TypeResponse, LatencyNs: 12_345_678, HTTP: &HTTP{Code: 201, Method: "PUT",
				URL: "http://backend:8080/applicants/_create/103294", Protocol: "HTTP/1.1"}},
		},
		"dns_request": {
			Time:             t0,
			Verdict:          VerdictForwarded,
			IP:               IP{Source: netip.MustParseAddr("fd00::2"), Destination: netip.MustParseAddr("fd00::a"), Version: IPv6},
			L4:               L4{Protocol: ProtoUDP, SourcePort: 40000, DestinationPort: 53},
			Type:             FlowTypeL7,
			TrafficDirection: TrafficDirectionEgress,
			L7:               &L7{Type: L7TypeRequest, DNS: &DNS{Query: "example.com.", ObservationSource: "proxy", Qtypes: []string{"AAAA"}}},
		},
		"dns_response": {
			Time:             t0,
			Verdict:          VerdictForwarded,
			IP:               IP{Source: netip.MustParseAddr("fd00::a"), Destination: netip.MustParseAddr("fd00::2"), Version: IPv6},
			L4:               L4{Protocol: ProtoUDP, SourcePort: 53, DestinationPort: 40000},
			Type:             FlowTypeL7,
			TrafficDirection: TrafficDirectionEgress,
			IsReply:          true,
			L7: &L7{Type: L7TypeResponse, LatencyNs: 800_000, DNS: &DNS{Query: "www.example.com.", IPs: []string{"2001:db8::1", "2001:db8::2"},
				TTL: 300, CNAMEs: []string{"example.com."}, ObservationSource: "proxy", Qtypes: []string{"AAAA"},
				RRtypes: []string{"CNAME", "AAAA", "AAAA"}}},
		},
		"dns_nxdomain": {
			Time: t0,
			Type: FlowTypeL7,
			L7:   &L7{Type: L7TypeResponse, DNS: &DNS{Query: "nope.example.", Rcode: 3, Qtypes: []string{"A"}}},
		},
		"kafka_response": {
			Time: t0,
			Type: FlowTypeL7,
			L7: &L7{Type: L7TypeResponse, LatencyNs: 1, Kafka: &Kafka{ErrorCode: -1, APIVersion: 7, APIKey: "produce",
				CorrelationID: 42, Topic: "orders"}},
		},
		"l7_sample_type_number": {
			Type: FlowTypeL7,
			L7:   &L7{Type: L7FlowType(9)},
		},
	}
}

// sampleNames lists sampleFlows' keys in golden-file order.
var sampleNames = []string{"tcp_forwarded", "tcp_policy_denied", "udp_ipv6_reply", "icmpv4_echo_request", "sock_process", "empty",
	"http_request", "http_response", "dns_request", "dns_response", "dns_nxdomain", "kafka_response", "l7_sample_type_number"}
