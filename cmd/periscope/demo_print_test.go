package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

func TestDemoAppendFlow(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	frontend := api.Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend"}
	backend := api.Endpoint{Identity: 5678, Namespace: "default", PodName: "backend"}
	tests := []struct {
		name string
		flow api.Flow
		want string
	}{
		{
			name: "a TCP flow between pods names them with ports and identities",
			flow: api.Flow{Time: at, Verdict: api.VerdictForwarded, Event: api.EventStart,
				Source: frontend, Destination: backend,
				L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 41234, DestinationPort: 8080, TCPFlags: api.TCPFlagSYN}},
			want: "Jan  2 15:04:05.000: default/frontend:41234 (ID:1234) -> default/backend:8080 (ID:5678) to-endpoint FORWARDED (TCP Flags: SYN) [start]\n",
		},
		{
			name: "an unknown peer is shown by address, ICMP without ports",
			flow: api.Flow{Time: at, Verdict: api.VerdictForwarded, Source: frontend,
				IP: api.IP{Destination: netip.MustParseAddr("ff02::1:ff00:2"), Version: api.IPv6},
				L4: api.L4{Protocol: api.ProtoICMPv6, ICMPType: 135}},
			want: "Jan  2 15:04:05.000: default/frontend (ID:1234) -> ff02::1:ff00:2 to-endpoint FORWARDED (ICMPv6 NeighborSolicitation)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(demoAppendFlow(nil, &tt.flow)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
