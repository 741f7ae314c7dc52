package datapath

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
)

// vethLab is a namespace behind a veth pair: host end in the test's
// namespace (hostIP), peer in the new namespace (podIP).
type vethLab struct {
	host          string
	ns            netns.NsHandle
	hostIP, podIP netip.Addr
}

func newVethLab(t *testing.T) *vethLab {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("restore netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })

	n := os.Getpid() % 250
	l := &vethLab{
		host: fmt.Sprintf("psc%dh", os.Getpid()%100000), ns: ns,
		hostIP: netip.AddrFrom4([4]byte{198, 19, byte(n), 1}), podIP: netip.AddrFrom4([4]byte{198, 19, byte(n), 2}),
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.host}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	addr := func(h *netlink.Handle, name string, ip netip.Addr) {
		lk, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(30, 32)}}
		if err := h.AddrAdd(lk, a); err != nil {
			t.Fatalf("address %s: %v", name, err)
		}
		if err := h.LinkSetUp(lk); err != nil {
			t.Fatalf("up %s: %v", name, err)
		}
	}
	root, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	inNS, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer inNS.Close()
	addr(root, l.host, l.hostIP)
	addr(inNS, "eth0", l.podIP)
	lo, _ := inNS.LinkByName("lo")
	_ = inNS.LinkSetUp(lo)
	return l
}

// inNS runs fn on a thread switched into the lab's namespace: sockets it
// creates live there.
func (l *vethLab) inNS(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is left locked (and so discarded) since it changed namespace.
		if err := netns.Set(l.ns); err != nil {
			t.Errorf("enter netns: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// tap counts IPv4 packets and bytes on an interface per protocol and
// direction with an AF_PACKET socket: the test's independent oracle.
type tap struct {
	fd   int
	mu   sync.Mutex
	seen map[[2]uint8]api.Counters // [proto, toPod]
	done chan struct{}
}

func newTap(t *testing.T, ifname string, podIP netip.Addr) *tap {
	t.Helper()
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatalf("af_packet: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		t.Fatalf("bind af_packet: %v", err)
	}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	tp := &tap{fd: fd, seen: map[[2]uint8]api.Counters{}, done: make(chan struct{})}
	pod := podIP.As4()
	go func() {
		buf := make([]byte, 128)
		for {
			select {
			case <-tp.done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
			if err != nil || n < 34 || binary.BigEndian.Uint16(buf[12:]) != 0x0800 {
				continue
			}
			toPod := uint8(0)
			if [4]byte(buf[30:34]) == pod {
				toPod = 1
			}
			k := [2]uint8{buf[23], toPod}
			tp.mu.Lock()
			c := tp.seen[k]
			c.PacketsForward++
			c.BytesForward += uint64(n)
			tp.seen[k] = c
			tp.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(tp.done); time.Sleep(60 * time.Millisecond); unix.Close(fd) })
	return tp
}

// counters returns the oracle's counts for proto, oriented so that forward
// is the direction toPodInitiates says.
func (tp *tap) counters(proto uint8, hostInitiates bool) api.Counters {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	to, from := tp.seen[[2]uint8{proto, 1}], tp.seen[[2]uint8{proto, 0}]
	if !hostInitiates {
		to, from = from, to
	}
	return api.Counters{PacketsForward: to.PacketsForward, BytesForward: to.BytesForward, PacketsReply: from.PacketsForward, BytesReply: from.BytesForward}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func TestVethTrafficIsCountedExactly(t *testing.T) {
	d := loadForTest(t, Config{CloseGrace: 200 * time.Millisecond, IdleTimeout: 700 * time.Millisecond, RingBufferSize: 1 << 16})
	l := newVethLab(t)
	if err := d.AttachInterface(l.host); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := d.Interfaces(); len(got) != 1 || got[0] != l.host {
		t.Fatalf("interfaces = %v", got)
	}
	tp := newTap(t, l.host, l.podIP)

	var (
		mu    sync.Mutex
		ended = map[uint8]api.Flow{}
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() {
		runDone <- d.Run(ctx, func(f *api.Flow) {
			if f.Event == api.EventEnd && f.IP.Version == api.IPv4 {
				mu.Lock()
				ended[f.L4.Protocol] = *f
				mu.Unlock()
			}
		})
	}()

	// TCP: the pod listens, the host connects, sends 3000 bytes, both close.
	var ln net.Listener
	var udp net.PacketConn
	l.inNS(t, func() {
		var err error
		if ln, err = net.Listen("tcp4", netip.AddrPortFrom(l.podIP, 8080).String()); err != nil {
			t.Errorf("listen: %v", err)
		}
		if udp, err = net.ListenPacket("udp4", netip.AddrPortFrom(l.podIP, 9999).String()); err != nil {
			t.Errorf("listen udp: %v", err)
		}
	})
	if t.Failed() {
		return
	}
	defer ln.Close()
	defer udp.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}()
	c, err := net.Dial("tcp4", netip.AddrPortFrom(l.podIP, 8080).String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := c.Write(make([]byte, 3000)); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.Close()

	// UDP: five datagrams to the pod.
	uc, err := net.Dial("udp4", netip.AddrPortFrom(l.podIP, 9999).String())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := uc.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	uc.Close()

	// ICMP: three echo requests from the host, answered by the pod's kernel.
	ic, err := net.ListenPacket("ip4:icmp", l.hostIP.String())
	if err != nil {
		t.Fatalf("icmp socket: %v", err)
	}
	defer ic.Close()
	for seq := range 3 {
		msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, byte(seq), 'p', 'i', 'n', 'g'}
		cs := icmpChecksum(msg)
		msg[2], msg[3] = byte(cs>>8), byte(cs)
		if _, err := ic.WriteTo(msg, &net.IPAddr{IP: l.podIP.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		_ = ic.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 100)
		if _, _, err := ic.ReadFrom(buf); err != nil {
			t.Fatalf("no echo reply: %v", err)
		}
	}

	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(ended)
		mu.Unlock()
		if n >= 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, proto := range []uint8{api.ProtoTCP, api.ProtoUDP, api.ProtoICMPv4} {
		f, ok := ended[proto]
		if !ok {
			t.Errorf("no End record for protocol %d", proto)
			continue
		}
		if f.IP.Source != l.hostIP || f.IP.Destination != l.podIP {
			t.Errorf("proto %d: %v -> %v, want the host as initiator", proto, f.IP.Source, f.IP.Destination)
		}
		if f.InitiatorHook != api.TrafficDirectionEgress {
			t.Errorf("proto %d: initiator hook %v, want egress (the host sends out of %s)", proto, f.InitiatorHook, l.host)
		}
		if want := tp.counters(proto, true); f.Counters != want {
			t.Errorf("proto %d: counters %+v, want %+v (AF_PACKET)", proto, f.Counters, want)
		}
	}
	if want := tp.counters(api.ProtoUDP, true); want.PacketsForward != 5 || want.PacketsReply != 0 {
		t.Errorf("oracle saw UDP %+v, want 5 datagrams one way", want)
	}
	if f := ended[api.ProtoTCP]; f.L4.TCPFlags&(api.TCPFlagSYN|api.TCPFlagFIN) != api.TCPFlagSYN|api.TCPFlagFIN || f.L4.DestinationPort != 8080 {
		t.Errorf("tcp flags %v port %d", f.L4.TCPFlags, f.L4.DestinationPort)
	}
	if s := d.Stats(); s.FlowsEnded < 3 || s.EventsRead+s.EventsLost != s.EventsEmitted {
		t.Errorf("stats %+v", s)
	}

	ifc, _ := net.InterfaceByName(l.host)
	if err := d.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at})
		if err != nil {
			t.Fatalf("query %v: %v", at, err)
		}
		if len(res.Programs) != 0 {
			t.Errorf("%d programs still attached at %v after Close", len(res.Programs), at)
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
