package datapath

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for BPF_PROG_TEST_RUN; checksums are left zero (the
// programs never check them).

func ethHeader(etherType uint16) []byte {
	b := make([]byte, 14)
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], etherType)
	return b
}

func ipv4Header(src, dst netip.Addr, proto uint8, payloadLen int) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+payloadLen))
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return b
}

func ipv6Header(src, dst netip.Addr, next uint8, payloadLen int) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

func tcpHeader(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func udpHeader(sport, dport uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+payload))
	return b
}

func icmpEcho(typ uint8, id uint16) []byte {
	b := make([]byte, 8)
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// v4 builds an Ethernet + IPv4 frame around l4.
func v4(src, dst string, proto uint8, l4 []byte) []byte {
	return cat(ethHeader(0x0800), ipv4Header(netip.MustParseAddr(src), netip.MustParseAddr(dst), proto, len(l4)), l4)
}

// v6 builds an Ethernet + IPv6 frame whose first next-header is next.
func v6(src, dst string, next uint8, rest []byte) []byte {
	return cat(ethHeader(0x86dd), ipv6Header(netip.MustParseAddr(src), netip.MustParseAddr(dst), next, len(rest)), rest)
}

// extHeader is an 8-byte IPv6 extension header (hop-by-hop, dest opts, routing).
func extHeader(next uint8) []byte { return []byte{next, 0, 0, 0, 0, 0, 0, 0} }

// fragHeader is an IPv6 fragment header at offset (in 8-byte units).
func fragHeader(next uint8, offset uint16, more bool) []byte {
	b := []byte{next, 0, 0, 0, 0, 0, 0, 1}
	fo := offset << 3
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(b[2:], fo)
	return b
}
