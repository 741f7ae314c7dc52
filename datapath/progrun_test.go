package datapath

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
)

// TestTCProgramParsesPackets runs every case through both header paths:
// direct packet access (headers in the linear data) and bpf_skb_load_bytes
// (headers in paged data, which PROG_TEST_RUN cannot build, forced here).
func TestTCProgramParsesPackets(t *testing.T) {
	for _, mode := range []struct {
		name          string
		loadBytesOnly bool
	}{{"with direct packet access", false}, {"with bpf_skb_load_bytes", true}} {
		t.Run(mode.name, func(t *testing.T) {
			testTCProgramParsesPackets(t, loadForTest(t, Config{loadBytesOnly: mode.loadBytesOnly}))
		})
	}
}

func testTCProgramParsesPackets(t *testing.T, d *Datapath) {
	deepChain := []byte{}
	for range 9 { // one more than MAX_IPV6_EXT
		deepChain = append(deepChain, extHeader(60)...)
	}
	deepChain = append(deepChain, tcpHeader(1, 2, 0x02)...)
	ihlBig := v4("198.18.0.1", "198.18.0.2", 6, tcpHeader(1000, 80, 0x02))
	ihlBig[14] = 0x4f
	ihlSmall := v4("198.18.0.1", "198.18.0.2", 6, tcpHeader(1000, 80, 0x02))
	ihlSmall[14] = 0x44
	frag4 := v4("198.18.0.1", "198.18.0.2", 17, udpHeader(53, 53, 8))
	frag4[14+6] = 0x00
	frag4[14+7] = 0x10 // offset 16*8
	vlan := cat(ethHeader(0x8100), []byte{0, 5, 0x08, 0x00}, v4("198.18.0.1", "198.18.0.2", 17, udpHeader(5000, 53, 4))[14:])

	tests := []struct {
		name  string
		pkt   []byte
		event bool // a START event and one table entry
		src   string
		dst   string
		sport uint16
		dport uint16
		proto uint8
	}{
		// PROG_TEST_RUN refuses an IPv4/IPv6 ethertype with a truncated IP
		// header (EINVAL, see TestTCProgramRejectsFramesTheKernelCannotBuild),
		// so truncated IP headers hide behind a VLAN tag the kernel skips.
		{name: "a VLAN tag with nothing after it is passed without event", pkt: ethHeader(0x8100)},
		{name: "an IPv4 VLAN frame with no IP header is passed without event", pkt: cat(ethHeader(0x8100), []byte{0, 5, 0x08, 0x00})},
		{name: "a non-IP frame is passed without event", pkt: cat(ethHeader(0x0806), make([]byte, 28))},
		{name: "a truncated IPv4 header is passed without event", pkt: cat(ethHeader(0x8100), []byte{0, 5, 0x08, 0x00}, []byte{0x45}, make([]byte, 9))},
		{name: "IPv4 with IHL below 5 is passed without event", pkt: ihlSmall},
		{name: "IPv4 with IHL beyond the packet is passed without event", pkt: ihlBig},
		{name: "a truncated TCP header is passed without event", pkt: v4("198.18.0.1", "198.18.0.2", 6, make([]byte, 10))},
		{name: "a non-first IPv4 fragment is passed without event", pkt: frag4},
		{name: "IPv6 with an extension chain longer than the bound is passed without event", pkt: v6("fd00::1", "fd00::2", 60, deepChain)},
		{name: "a non-first IPv6 fragment is passed without event", pkt: v6("fd00::1", "fd00::2", 44, cat(fragHeader(17, 8, false), udpHeader(1, 2, 8)))},
		{name: "a truncated IPv6 header is passed without event", pkt: cat(ethHeader(0x8100), []byte{0, 5, 0x86, 0xdd}, []byte{0x60}, make([]byte, 29))},
		{
			name: "a TCP SYN starts a flow from its sender", pkt: v4("198.18.0.2", "198.18.0.1", 6, tcpHeader(40000, 80, 0x02)),
			event: true, src: "198.18.0.2", dst: "198.18.0.1", sport: 40000, dport: 80, proto: api.ProtoTCP,
		},
		{
			name: "a SYN-ACK seen first makes its receiver the initiator", pkt: v4("198.18.0.1", "198.18.0.2", 6, tcpHeader(80, 40001, 0x12)),
			event: true, src: "198.18.0.2", dst: "198.18.0.1", sport: 40001, dport: 80, proto: api.ProtoTCP,
		},
		{
			name: "a UDP datagram starts a flow", pkt: v4("198.18.0.1", "198.18.0.2", 17, udpHeader(5353, 53, 20)),
			event: true, src: "198.18.0.1", dst: "198.18.0.2", sport: 5353, dport: 53, proto: api.ProtoUDP,
		},
		{
			name: "a VLAN-tagged UDP datagram starts a flow", pkt: vlan,
			event: true, src: "198.18.0.1", dst: "198.18.0.2", sport: 5000, dport: 53, proto: api.ProtoUDP,
		},
		{
			name: "an ICMP echo request starts a flow", pkt: v4("198.18.0.9", "198.18.0.1", 1, icmpEcho(8, 77)),
			event: true, src: "198.18.0.9", dst: "198.18.0.1", proto: api.ProtoICMPv4,
		},
		{
			name: "an ICMPv6 echo reply seen first makes its receiver the initiator", pkt: v6("fd00::1", "fd00::9", 58, icmpEcho(129, 5)),
			event: true, src: "fd00::9", dst: "fd00::1", proto: api.ProtoICMPv6,
		},
		{
			name:  "IPv6 TCP behind hop-by-hop and dest-opts headers starts a flow",
			pkt:   v6("fd00::2", "fd00::1", 0, cat(extHeader(60), extHeader(6), tcpHeader(1234, 443, 0x02))),
			event: true, src: "fd00::2", dst: "fd00::1", sport: 1234, dport: 443, proto: api.ProtoTCP,
		},
		{
			name:  "a first IPv6 fragment carries its UDP ports",
			pkt:   v6("fd00::2", "fd00::1", 44, cat(fragHeader(17, 0, true), udpHeader(7000, 8000, 16))),
			event: true, src: "fd00::2", dst: "fd00::1", sport: 7000, dport: 8000, proto: api.ProtoUDP,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearFlows(t, d)
			drain(t, d)
			ret, err := runPacket(t, d.objs.FlowIngress, tt.pkt)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if ret != tcxNext {
				t.Errorf("verdict = %#x, want TCX_NEXT", ret)
			}
			flows := drain(t, d)
			if n := flowCount(t, d); !tt.event {
				if n != 0 || len(flows) != 0 {
					t.Fatalf("got %d table entries and %d events, want none", n, len(flows))
				}
				return
			} else if n != 1 || len(flows) != 1 {
				t.Fatalf("got %d table entries and %d events, want 1 and 1", n, len(flows))
			}
			f := flows[0]
			if f.Event != api.EventStart || f.Type != api.FlowTypeL3L4 || f.Verdict != api.VerdictForwarded {
				t.Errorf("event %v type %v verdict %v, want START L3_L4 FORWARDED", f.Event, f.Type, f.Verdict)
			}
			if f.IP.Source != netip.MustParseAddr(tt.src) || f.IP.Destination != netip.MustParseAddr(tt.dst) {
				t.Errorf("addresses %v -> %v, want %s -> %s", f.IP.Source, f.IP.Destination, tt.src, tt.dst)
			}
			if f.L4.Protocol != tt.proto || f.L4.SourcePort != tt.sport || f.L4.DestinationPort != tt.dport {
				t.Errorf("l4 %+v, want proto %d ports %d -> %d", f.L4, tt.proto, tt.sport, tt.dport)
			}
			var wantFwd, wantRev uint64 = 1, 0
			if f.L4.TCPFlags == api.TCPFlagSYN|api.TCPFlagACK || f.L4.ICMPType == 129 {
				wantFwd, wantRev = 0, 1
			}
			c := f.Counters
			if c.PacketsForward != wantFwd || c.PacketsReply != wantRev || c.BytesForward+c.BytesReply != uint64(len(tt.pkt)) {
				t.Errorf("counters %+v, want %d/%d packets and %d bytes", c, wantFwd, wantRev, len(tt.pkt))
			}
		})
	}
}

func TestTCProgramRejectsFramesTheKernelCannotBuild(t *testing.T) {
	d := loadForTest(t, Config{})
	// The kernel refuses PROG_TEST_RUN data shorter than ETH_HLEN for TC,
	// and an IP ethertype whose IP header is cut short.
	for _, pkt := range [][]byte{make([]byte, 13), ethHeader(0x0800), cat(ethHeader(0x86dd), make([]byte, 30))} {
		if _, err := runPacket(t, d.objs.FlowIngress, pkt); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("run with %d bytes: err = %v, want EINVAL", len(pkt), err)
		}
	}
	if n := flowCount(t, d); n != 0 {
		t.Fatalf("%d table entries, want 0", n)
	}
}
