package xdpflood

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

func TestFrameBytes(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	ok := Frame{
		SrcMAC: mac("02:00:00:00:00:01"), DstMAC: mac("02:00:00:00:00:02"),
		Src: netip.MustParseAddr("198.18.0.3"), Dst: netip.MustParseAddr("198.18.0.2"),
		SrcPort: 1024, SrcPorts: 4096, DstPort: 9,
	}
	tests := []struct {
		name    string
		edit    func(*Frame)
		wantLen int // 0: an error
	}{
		{"a default frame is 60 bytes, 64 on the wire", func(*Frame) {}, 60},
		{"a longer frame keeps its length", func(f *Frame) { f.Len = 128 }, 128},
		{"a frame shorter than Ethernet's minimum is refused", func(f *Frame) { f.Len = 59 }, 0},
		{"an IPv6 source is refused", func(f *Frame) { f.Src = netip.MustParseAddr("fd00::1") }, 0},
		{"a missing MAC is refused", func(f *Frame) { f.DstMAC = nil }, 0},
		{"source ports past 65535 are refused", func(f *Frame) { f.SrcPort = 65000; f.SrcPorts = 1000 }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.edit(&f)
			b, err := f.Bytes()
			if tt.wantLen == 0 {
				if err == nil {
					t.Fatalf("no error for %+v", f)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.wantLen {
				t.Fatalf("len %d, want %d", len(b), tt.wantLen)
			}
			if got := checksum(b[14:34]); got != 0 {
				t.Errorf("IPv4 header does not check: sum %#x", got)
			}
			if got := int(binary.BigEndian.Uint16(b[16:18])); got != tt.wantLen-14 {
				t.Errorf("IPv4 total length %d, want %d", got, tt.wantLen-14)
			}
			if got := int(binary.BigEndian.Uint16(b[38:40])); got != tt.wantLen-34 {
				t.Errorf("UDP length %d, want %d", got, tt.wantLen-34)
			}
			if sp, dp := binary.BigEndian.Uint16(b[34:36]), binary.BigEndian.Uint16(b[36:38]); sp != f.SrcPort || dp != f.DstPort {
				t.Errorf("ports %d→%d, want %d→%d", sp, dp, f.SrcPort, f.DstPort)
			}
		})
	}
}
