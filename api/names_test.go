package api

import (
	"net/netip"
	"testing"
)

func TestEnumsPrintHubbleNames(t *testing.T) {
	tests := []struct {
		name string
		got  interface{ String() string }
		want string
	}{
		{"a forwarded verdict", VerdictForwarded, "FORWARDED"},
		{"a dropped verdict", VerdictDropped, "DROPPED"},
		{"an audit verdict", VerdictAudit, "AUDIT"},
		{"an error verdict", VerdictError, "ERROR"},
		{"an unset verdict", VerdictUnknown, "VERDICT_UNKNOWN"},
		{"a verdict without a name", Verdict(42), "42"},
		{"the L3/L4 type", FlowTypeL3L4, "L3_L4"},
		{"the sock type", FlowTypeSock, "SOCK"},
		{"egress", TrafficDirectionEgress, "EGRESS"},
		{"an unknown direction", TrafficDirectionUnknown, "TRAFFIC_DIRECTION_UNKNOWN"},
		{"IPv6", IPv6, "IPv6"},
		{"policy denied", DropReasonPolicyDenied, "POLICY_DENIED"},
		{"policy deny", DropReasonPolicyDeny, "POLICY_DENY"},
		{"a drop reason Periscope never produces", DropReason(150), "150"},
		{"the periodic event", EventPeriodic, "periodic"},
		{"SYN and ACK", TCPFlagSYN | TCPFlagACK, "SYN, ACK"},
		{"all flags in Hubble's order", TCPFlags(0x1ff), "SYN, ACK, RST, FIN, PSH, URG, ECE, CWR, NS"},
		{"no flags", TCPFlags(0), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseFunctionsAcceptNamesInAnyCaseAndNumbers(t *testing.T) {
	tests := []struct {
		name    string
		parse   func() (any, error)
		want    any
		wantErr bool
	}{
		{"a lower-case verdict", func() (any, error) { return ParseVerdict("dropped") }, VerdictDropped, false},
		{"an upper-case verdict", func() (any, error) { return ParseVerdict("AUDIT") }, VerdictAudit, false},
		{"a numeric verdict", func() (any, error) { return ParseVerdict("1") }, VerdictForwarded, false},
		{"a misspelt verdict", func() (any, error) { return ParseVerdict("forwarde") }, Verdict(0), true},
		{"a flow type", func() (any, error) { return ParseFlowType("l3_l4") }, FlowTypeL3L4, false},
		{"a direction", func() (any, error) { return ParseTrafficDirection("ingress") }, TrafficDirectionIngress, false},
		{"an IP version", func() (any, error) { return ParseIPVersion("ipv4") }, IPv4, false},
		{"a drop reason name", func() (any, error) { return ParseDropReason("policy_deny") }, DropReasonPolicyDeny, false},
		{"a drop reason number", func() (any, error) { return ParseDropReason("133") }, DropReasonPolicyDenied, false},
		{"a drop reason that is neither", func() (any, error) { return ParseDropReason("nope") }, DropReason(0), true},
		{"an event kind", func() (any, error) { return ParseEventKind("END") }, EventEnd, false},
		{"a TCP flag", func() (any, error) { return ParseTCPFlag("syn") }, TCPFlagSYN, false},
		{"a TCP flag that does not exist", func() (any, error) { return ParseTCPFlag("XYZ") }, TCPFlags(0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProtocolNameUsesHubbleNames(t *testing.T) {
	for p, want := range map[uint8]string{6: "TCP", 17: "UDP", 1: "ICMPv4", 58: "ICMPv6", 132: "SCTP", 47: "47"} {
		if got := ProtocolName(p); got != want {
			t.Errorf("ProtocolName(%d) = %q, want %q", p, got, want)
		}
	}
}

func TestSummaryReadsLikeHubbles(t *testing.T) {
	tests := []struct {
		name string
		l4   L4
		ipv  IPVersion
		want string
	}{
		{"TCP lists its flags", L4{Protocol: ProtoTCP, TCPFlags: TCPFlagSYN | TCPFlagACK}, IPv4, "TCP Flags: SYN, ACK"},
		{"TCP without flags is just TCP", L4{Protocol: ProtoTCP}, IPv4, "TCP"},
		{"UDP is just UDP", L4{Protocol: ProtoUDP}, IPv4, "UDP"},
		{"an ICMPv4 echo request is named", L4{Protocol: ProtoICMPv4, ICMPType: 8}, IPv4, "ICMPv4 EchoRequest"},
		{"an ICMPv4 echo reply is named", L4{Protocol: ProtoICMPv4}, IPv4, "ICMPv4 EchoReply"},
		{"an ICMPv4 port unreachable shows its code", L4{Protocol: ProtoICMPv4, ICMPType: 3, ICMPCode: 3}, IPv4, "ICMPv4 DestinationUnreachable(Port)"},
		{"an ICMPv6 echo reply is named", L4{Protocol: ProtoICMPv6, ICMPType: 129}, IPv6, "ICMPv6 EchoReply"},
		{"an unknown ICMP type shows numbers", L4{Protocol: ProtoICMPv6, ICMPType: 200, ICMPCode: 1}, IPv6, "ICMPv6 200(1)"},
		{"no L4 falls back to the IP version", L4{}, IPv6, "IPv6"},
		{"nothing at all gives nothing", L4{}, IPNotUsed, ""},
		{"another protocol shows its number", L4{Protocol: 47}, IPv4, "47"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Flow{L4: tt.l4, IP: IP{Version: tt.ipv, Source: netip.MustParseAddr("10.0.0.1")}}
			if got := f.Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}
