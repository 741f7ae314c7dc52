package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

var printTime = time.Date(2026, 11, 23, 9, 30, 14, 123456789, time.UTC)

// printSamples are flows whose printed forms the tests check.
var printSamples = map[string]*api.Flow{
	"pods": {
		Time: printTime, Verdict: api.VerdictForwarded,
		IP:               api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
		L4:               api.L4{Protocol: api.ProtoTCP, SourcePort: 43210, DestinationPort: 8080, TCPFlags: api.TCPFlagSYN | api.TCPFlagACK},
		Source:           api.Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend"},
		Destination:      api.Endpoint{Identity: 5678, Namespace: "default", PodName: "backend"},
		Type:             api.FlowTypeL3L4,
		TrafficDirection: api.TrafficDirectionEgress,
		Counters:         api.Counters{PacketsForward: 3, BytesForward: 180, PacketsReply: 2, BytesReply: 120},
	},
	"ips": {
		Time: printTime, Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDenied,
		IP:               api.IP{Source: netip.MustParseAddr("fd00::7"), Destination: netip.MustParseAddr("10.0.0.9"), Version: api.IPv6},
		L4:               api.L4{Protocol: api.ProtoUDP, SourcePort: 5353, DestinationPort: 53},
		Source:           api.Endpoint{Identity: 2},
		Type:             api.FlowTypeL3L4,
		TrafficDirection: api.TrafficDirectionIngress,
		Counters:         api.Counters{PacketsForward: 1, BytesForward: 1536},
	},
	"names": {
		Time: printTime, Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDenied,
		IP:               api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.19.0.7"), Version: api.IPv4},
		L4:               api.L4{Protocol: api.ProtoTCP, SourcePort: 43210, DestinationPort: 443, TCPFlags: api.TCPFlagSYN},
		Source:           api.Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend"},
		Destination:      api.Endpoint{Identity: 2},
		DestinationNames: []string{"ads.example.com", "tracker.example\x1b.net"},
		Type:             api.FlowTypeL3L4,
		TrafficDirection: api.TrafficDirectionEgress,
	},
	"icmp": {
		Time: printTime, Verdict: api.VerdictForwarded,
		IP: api.IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"), Version: api.IPv4},
		L4: api.L4{Protocol: api.ProtoICMPv4, ICMPType: 8},
	},
	"sock": {
		Time: printTime, Verdict: api.VerdictForwarded, Type: api.FlowTypeSock,
		IP:      api.IP{Source: netip.MustParseAddr("127.0.0.1"), Destination: netip.MustParseAddr("127.0.0.1"), Version: api.IPv4},
		L4:      api.L4{Protocol: api.ProtoTCP, SourcePort: 5555, DestinationPort: 4244},
		Process: api.Process{PID: 42, Comm: "curl\x1b"},
	},
}

func TestCompactPrinterWritesHubbleLikeLines(t *testing.T) {
	tests := []struct{ name, flow, want string }{
		{"pods are shown by namespace and name with counters", "pods",
			"Nov 23 09:30:14.123: default/frontend:43210 (ID:1234) -> default/backend:8080 (ID:5678) EGRESS FORWARDED (TCP Flags: SYN, ACK) 3 pkts/180 B →, 2 pkts/120 B ←\n"},
		{"endpoints without pods are shown by address, reserved identities by name", "ips",
			"Nov 23 09:30:14.123: [fd00::7]:5353 (world) -> 10.0.0.9:53 INGRESS DROPPED (POLICY_DENIED) (UDP) 1 pkt/1.5 KiB →, 0 pkts/0 B ←\n"},
		{"an address with DNS names is shown by them, as hubble does", "names",
			"Nov 23 09:30:14.123: default/frontend:43210 (ID:1234) -> ads.example.com,tracker.example?.net:443 (world) EGRESS DROPPED (POLICY_DENIED) (TCP Flags: SYN)\n"},
		{"ICMP has no ports", "icmp",
			"Nov 23 09:30:14.123: 10.0.0.1 -> 10.0.0.2 FORWARDED (ICMPv4 EchoRequest)\n"},
		{"a host process is named, without control characters", "sock",
			"Nov 23 09:30:14.123: 127.0.0.1:5555 -> 127.0.0.1:4244 FORWARDED (TCP) [curl? pid 42]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p, err := newPrinter("compact", &out, time.UTC, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Print(nil, printSamples[tt.flow]); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestJSONPrinterWritesLinesAsReceived(t *testing.T) {
	for _, format := range []string{"json", "jsonpb", "JSON"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			p, err := newPrinter(format, &out, time.UTC, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range []string{`{"flow":{"verdict":"DROPPED"}}`, `{"flow":{}}`} {
				if err := p.Print([]byte(line), &api.Flow{}); err != nil {
					t.Fatal(err)
				}
			}
			if want := "{\"flow\":{\"verdict\":\"DROPPED\"}}\n{\"flow\":{}}\n"; out.String() != want {
				t.Errorf("got %q, want %q", out.String(), want)
			}
		})
	}
}

func TestTablePrinterAlignsColumns(t *testing.T) {
	var out bytes.Buffer
	p, err := newPrinter("table", &out, time.UTC, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pods", "icmp"} {
		if err := p.Print(nil, printSamples[name]); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() != 0 {
		t.Errorf("table wrote before Flush outside follow mode: %q", out.String())
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"TIMESTAMP            SOURCE                            DESTINATION                     TYPE          VERDICT    SUMMARY",
		"Nov 23 09:30:14.123  default/frontend:43210 (ID:1234)  default/backend:8080 (ID:5678)  L3_L4 EGRESS  FORWARDED  TCP Flags: SYN, ACK 3 pkts/180 B →, 2 pkts/120 B ←",
		"Nov 23 09:30:14.123  10.0.0.1                          10.0.0.2                        UNKNOWN_TYPE  FORWARDED  ICMPv4 EchoRequest",
		"",
	}, "\n")
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestTablePrinterFlushesEveryLineWhenFollowing(t *testing.T) {
	var out bytes.Buffer
	p, err := newPrinter("table", &out, time.UTC, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Print(nil, printSamples["icmp"]); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "ICMPv4 EchoRequest") {
		t.Errorf("follow mode kept the line buffered: %q", out.String())
	}
}

func TestNewPrinterRejectsUnknownFormats(t *testing.T) {
	if _, err := newPrinter("yaml", &bytes.Buffer{}, time.UTC, false); err == nil ||
		!strings.Contains(err.Error(), `-o "yaml": want compact, json, jsonpb or table`) {
		t.Errorf("error = %v", err)
	}
}
