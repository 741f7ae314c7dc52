package xdpflood_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/xdpflood"
)

// TestGeneratorFloodsThePeerPod sends a flood out of one pod's eth0 and
// reads it from a socket in the other pod: the frames cross the host end
// of the veth and the bridge like the pod's own, with their source ports
// cycled.
func TestGeneratorFloodsThePeerPod(t *testing.T) {
	netlab.RequireRoot(t)
	lab, err := netlab.New(t.Context(), netlab.Options{Name: t.Name()})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	var from, to *netlab.Pod
	for _, p := range []struct {
		name string
		pod  **netlab.Pod
	}{{"from", &from}, {"to", &to}} {
		if *p.pod, err = lab.AddPod(netlab.PodSpec{Name: p.name}); err != nil {
			t.Fatal(err)
		}
	}
	// The host end receives what eth0's XDP redirect transmits.
	if err := netlab.SetGRO(from.HostVeth.Name, true); err != nil {
		t.Fatal(err)
	}
	conn, err := to.ListenUDP(0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)

	var f xdpflood.Frame
	err = from.Do(func() error {
		eth, err := net.InterfaceByName("eth0")
		f.SrcMAC = eth.HardwareAddr
		return err
	})
	if err == nil {
		err = to.Do(func() error {
			eth, err := net.InterfaceByName("eth0")
			f.DstMAC = eth.HardwareAddr
			return err
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Src, f.Dst, f.SrcPort, f.SrcPorts, f.DstPort = from.IPv4, to.IPv4, 20000, 8, port
	g, err := xdpflood.New(f, from.Veth.Index, xdpflood.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := from.Do(func() error { return g.Run(ctx) }); err != nil {
		t.Fatal(err)
	}
	n, err := g.Generated()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no frame generated")
	}
	ports := map[int]bool{}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	for len(ports) < 8 {
		_, a, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("read after %d source ports of 8 (%d frames generated): %v", len(ports), n, err)
		}
		if a.Port < 20000 || a.Port >= 20008 {
			t.Fatalf("source port %d, want 20000 to 20007", a.Port)
		}
		ports[a.Port] = true
	}
	t.Logf("%d frames generated in 50 ms", n)
}
