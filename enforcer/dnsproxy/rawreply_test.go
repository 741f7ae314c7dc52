package dnsproxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
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

// Without CAP_NET_RAW a reply leaves from a transparent socket bound to
// the server's address and port: sent from the root namespace, as the
// proxy does, the pod receives it from there, over IPv4 and IPv6.
func TestTransparentRepliesComeFromTheServersAddress(t *testing.T) {
	lab := labtest.NewLab(t)
	pod, err := lab.AddPod(netlab.PodSpec{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	r := &rawReplier{fd4: -1, fd6: -1, transparent: true}
	defer r.Close()
	for _, tc := range []struct{ server, client netip.Addr }{
		{netip.MustParseAddr("198.19.0.53"), pod.IPv4},
		{netip.MustParseAddr("fd00:53::53"), pod.IPv6},
	} {
		conn, err := pod.ListenUDP(0)
		if err != nil {
			t.Fatal(err)
		}
		client := netip.AddrPortFrom(tc.client, uint16(conn.LocalAddr().(*net.UDPAddr).Port))
		server := netip.AddrPortFrom(tc.server, 53)
		if err := r.send(server, client, []byte("answer")); err != nil {
			t.Fatalf("send from %s: %v", server, err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		conn.Close()
		if err != nil || string(buf[:n]) != "answer" || from.Addr().Unmap() != tc.server || from.Port() != 53 {
			t.Fatalf("received %q from %v (%v), want \"answer\" from %v", buf[:n], from, err, server)
		}
	}
}
