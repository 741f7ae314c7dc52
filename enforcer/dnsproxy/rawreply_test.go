package dnsproxy

import (
	"net/netip"
	"testing"
)

// A receiver verifies a UDP checksum by summing the pseudo-header, header
// and payload: the result must be all ones.
func TestPutUDPWritesAChecksumReceiversAccept(t *testing.T) {
	for _, tt := range []struct{ src, dst string }{
		{"198.18.0.254", "198.18.0.2"},
		{"fd00::fe", "fd00::2"},
	} {
		for _, payload := range [][]byte{nil, []byte("odd"), []byte("even")} {
			s, d := netip.MustParseAddr(tt.src), netip.MustParseAddr(tt.dst)
			b := make([]byte, 8+len(payload))
			putUDP(b, s.AsSlice(), d.AsSlice(), 53, 40000, payload)
			sum := addWords(addWords(0, s.AsSlice()), d.AsSlice())
			sum += 17 + uint32(len(b))
			sum = addWords(sum, b)
			for sum>>16 != 0 {
				sum = sum&0xffff + sum>>16
			}
			if sum != 0xffff {
				t.Errorf("%s -> %s payload %q: checksum verifies to %#x, want 0xffff", tt.src, tt.dst, payload, sum)
			}
		}
	}
}
