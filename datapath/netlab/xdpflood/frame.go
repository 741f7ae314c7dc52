package xdpflood

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Frame sizes: Ethernet, IPv4 without options and UDP headers; the FCS is
// not part of the data (a 60-byte frame is 64 bytes on the wire).
const (
	headerLen   = 14 + 20 + 8
	MinFrameLen = 60
	maxFrameLen = 1514
)

// Frame describes the UDP/IPv4 frames of a flood.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.Addr // IPv4
	// SrcPort is the first source port; SrcPorts ports from it are cycled
	// through, one per frame (0 or 1: every frame has SrcPort).
	SrcPort  uint16
	SrcPorts int
	DstPort  uint16
	// Len is the frame's length without FCS; 0 means MinFrameLen.
	Len int
}

// Bytes returns the first frame: the IPv4 header checksum set, the UDP
// checksum 0 (none) since the program rewrites the source port, the payload
// zeroes.
func (f Frame) Bytes() ([]byte, error) {
	n := f.Len
	if n == 0 {
		n = MinFrameLen
	}
	if n < MinFrameLen || n > maxFrameLen {
		return nil, fmt.Errorf("frame length %d: want %d to %d", n, MinFrameLen, maxFrameLen)
	}
	if len(f.SrcMAC) != 6 || len(f.DstMAC) != 6 {
		return nil, fmt.Errorf("frame MACs %q, %q: want 6 bytes each", f.SrcMAC, f.DstMAC)
	}
	if !f.Src.Is4() || !f.Dst.Is4() {
		return nil, fmt.Errorf("frame addresses %v, %v: want IPv4", f.Src, f.Dst)
	}
	if f.SrcPorts < 0 || int(f.SrcPort)+max(f.SrcPorts, 1)-1 > 0xffff {
		return nil, fmt.Errorf("source ports %d from %d: past 65535", f.SrcPorts, f.SrcPort)
	}
	b := make([]byte, n)
	copy(b[0:6], f.DstMAC)
	copy(b[6:12], f.SrcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)

	ip := b[14:34]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:4], uint16(n-14))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64                                  // TTL
	ip[9] = 17                                  // UDP
	src, dst := f.Src.As4(), f.Dst.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:12], checksum(ip))

	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:2], f.SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], f.DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(n-34))
	return b, nil
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
