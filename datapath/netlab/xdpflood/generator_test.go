package xdpflood_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/datapath/netlab/xdpflood"
)

// TestGeneratorFloodsThePeerPod sends a flood out of one pod's eth0 and
// reads it from a socket in the other pod: the frames cross the host end
// of the veth and the bridge like the pod's own, with their source ports
// cycled.
func TestGeneratorFloodsThePeerPod(t *testing.T) {
	from, to := twoPods(t)
	var err error
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

func TestPacedFloodHoldsItsRate(t *testing.T) {
	from, to := twoPods(t)
	var err error
	if err := netlab.SetGRO(from.HostVeth.Name, true); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:00:00:00:00:02")
	f := xdpflood.Frame{DstMAC: mac, Src: from.IPv4, Dst: to.IPv4, SrcPort: 20000, SrcPorts: 8, DstPort: 9}
	const rate = 50000
	var g *xdpflood.Generator
	var before, after map[string]uint64
	var paced xdpflood.Paced
	err = from.Do(func() error {
		eth, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		f.SrcMAC = eth.HardwareAddr
		// The hold veth keeps the program in the XDP dispatcher.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hold0"}, PeerName: "hold1"}); err != nil {
			return err
		}
		hold, err := netlink.LinkByName("hold0")
		if err != nil {
			return err
		}
		if g, err = xdpflood.New(f, from.Veth.Index, xdpflood.Options{Hold: hold.Attrs().Index}); err != nil {
			return err
		}
		if before, err = netlab.EthtoolStats("eth0"); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if paced, err = g.RunPaced(ctx, rate); err != nil {
			return err
		}
		after, err = netlab.EthtoolStats("eth0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	t.Logf("offered %.0f frames/s (%+v), eth0 xdp_xmit +%d, errors +%d", paced.Rate(), paced,
		after["tx_queue_0_xdp_xmit"]-before["tx_queue_0_xdp_xmit"],
		after["tx_queue_0_xdp_xmit_errors"]-before["tx_queue_0_xdp_xmit_errors"])
	// A loaded machine may deschedule the generator: frames given up are
	// not offered, but no more than the rate may ever be.
	if r := paced.Rate(); r > rate*1.05 || r < rate/4 {
		t.Errorf("offered %.0f frames/s, want about %d", r, rate)
	}
	if sent := after["tx_queue_0_xdp_xmit"] - before["tx_queue_0_xdp_xmit"] + after["tx_queue_0_xdp_xmit_errors"] - before["tx_queue_0_xdp_xmit_errors"]; sent != paced.Frames {
		t.Errorf("eth0 transmitted or refused %d frames, the generator sent %d", sent, paced.Frames)
	}
	// Unpaced again after a paced run.
	err = from.Do(func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		n0, _ := g.Generated()
		if err := g.Run(ctx); err != nil {
			return err
		}
		n1, err := g.Generated()
		if n1-n0 < 20*rate/1000*4 {
			t.Errorf("unpaced run after a paced one sent %d frames in 20 ms: still paced?", n1-n0)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// twoPods builds a lab of two pods, "from" and "to", removed when the test
// ends.
func twoPods(t *testing.T) (from, to *netlab.Pod) {
	t.Helper()
	lab := labtest.NewLab(t)
	var err error
	if from, err = lab.AddPod(netlab.PodSpec{Name: "from"}); err != nil {
		t.Fatal(err)
	}
	if to, err = lab.AddPod(netlab.PodSpec{Name: "to"}); err != nil {
		t.Fatal(err)
	}
	return from, to
}
