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
// namespace (hostIP, hostIP6), peer in the new namespace (podIP, podIP6).
type vethLab struct {
	host            string
	ns              netns.NsHandle
	hostIP, podIP   netip.Addr
	hostIP6, podIP6 netip.Addr
}

func newVethLab(t *testing.T) *vethLab {
	t.Helper()
	ns := newNetns(t)
	n := os.Getpid() % 250
	l := &vethLab{
		host: fmt.Sprintf("psc%dh", os.Getpid()%100000), ns: ns,
		hostIP: netip.AddrFrom4([4]byte{198, 19, byte(n), 1}), podIP: netip.AddrFrom4([4]byte{198, 19, byte(n), 2}),
		hostIP6: netip.AddrFrom16([16]byte{0xfd, 0, 0x19, 0x19, 0, byte(n), 15: 1}),
		podIP6:  netip.AddrFrom16([16]byte{0xfd, 0, 0x19, 0x19, 0, byte(n), 15: 2}),
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.host}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	addr := func(h *netlink.Handle, name string, ip, ip6 netip.Addr) {
		lk, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(30, 32)}}
		if err := h.AddrAdd(lk, a); err != nil {
			t.Fatalf("address %s: %v", name, err)
		}
		// No duplicate address detection: usable at once.
		a6 := &netlink.Addr{IPNet: &net.IPNet{IP: ip6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(lk, a6); err != nil {
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
	addr(root, l.host, l.hostIP, l.hostIP6)
	addr(inNS, "eth0", l.podIP, l.podIP6)
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

// tap counts the packets and bytes between the lab's two addresses of each
// family on an interface, per IP version, protocol and direction, with an
// AF_PACKET socket: the test's independent oracle. Of ICMP it counts echo
// requests and replies only (not neighbour discovery).
type tap struct {
	fd   int
	mu   sync.Mutex
	seen map[[3]uint8]api.Counters // [version, proto, toPod]
	done chan struct{}
}

func newTap(t *testing.T, ifname string, l *vethLab) *tap {
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
	tp := &tap{fd: fd, seen: map[[3]uint8]api.Counters{}, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 128)
		for {
			select {
			case <-tp.done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
			if err != nil || n < 14 {
				continue
			}
			var (
				version, proto uint8
				src, dst       netip.Addr
				l4             []byte
			)
			switch binary.BigEndian.Uint16(buf[12:]) {
			case 0x0800:
				version, proto = 4, buf[23]
				src, dst = netip.AddrFrom4([4]byte(buf[26:30])), netip.AddrFrom4([4]byte(buf[30:34]))
				l4 = buf[14+int(buf[14]&0xf)*4:]
			case 0x86dd:
				version, proto = 6, buf[20]
				src, dst = netip.AddrFrom16([16]byte(buf[22:38])), netip.AddrFrom16([16]byte(buf[38:54]))
				l4 = buf[54:]
			default:
				continue
			}
			toPod := uint8(0)
			switch {
			case src == l.hostIP && dst == l.podIP, src == l.hostIP6 && dst == l.podIP6:
				toPod = 1
			case src == l.podIP && dst == l.hostIP, src == l.podIP6 && dst == l.hostIP6:
			default:
				continue
			}
			if proto == api.ProtoICMPv4 && l4[0] != 8 && l4[0] != 0 || proto == api.ProtoICMPv6 && l4[0] != 128 && l4[0] != 129 {
				continue
			}
			k := [3]uint8{version, proto, toPod}
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

// counters returns the oracle's counts for version and proto, oriented so
// that forward is the direction hostInitiates says.
func (tp *tap) counters(version, proto uint8, hostInitiates bool) api.Counters {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	to, from := tp.seen[[3]uint8{version, proto, 1}], tp.seen[[3]uint8{version, proto, 0}]
	if !hostInitiates {
		to, from = from, to
	}
	return api.Counters{PacketsForward: to.PacketsForward, BytesForward: to.BytesForward, PacketsReply: from.PacketsForward, BytesReply: from.BytesForward}
}

// family is one IP version's addresses and socket networks on the lab.
type family struct {
	version        api.IPVersion
	host, pod      netip.Addr
	tcp, udp, icmp string
	echo           uint8 // ICMP echo request type
	icmpProto      uint8
}

func (l *vethLab) families() []family {
	return []family{
		{api.IPv4, l.hostIP, l.podIP, "tcp4", "udp4", "ip4:icmp", 8, api.ProtoICMPv4},
		{api.IPv6, l.hostIP6, l.podIP6, "tcp6", "udp6", "ip6:ipv6-icmp", 128, api.ProtoICMPv6},
	}
}

func TestVethTrafficIsCountedExactly(t *testing.T) {
	// CloseGrace and IdleTimeout well above any delay a loaded machine puts
	// between a connection's packets: shorter ones could end it before its
	// last packet and split its counts.
	d := loadForTest(t, Config{CloseGrace: time.Second, IdleTimeout: 2 * time.Second, RingBufferSize: 1 << 16})
	l := newVethLab(t)
	if err := d.AttachInterface(l.host); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := d.Interfaces(); len(got) != 1 || got[0] != l.host {
		t.Fatalf("interfaces = %v", got)
	}
	tp := newTap(t, l.host, l)
	fams := l.families()

	var (
		mu    sync.Mutex
		ended = map[[2]uint8]api.Flow{} // [version, proto]
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() {
		runDone <- d.Run(ctx, func(f *api.Flow) {
			if f.Event != api.EventEnd {
				return
			}
			for _, fm := range fams {
				ours := f.IP.Source == fm.host && f.IP.Destination == fm.pod || f.IP.Source == fm.pod && f.IP.Destination == fm.host
				isICMP := f.L4.Protocol == api.ProtoICMPv4 || f.L4.Protocol == api.ProtoICMPv6
				if ours && (!isICMP || f.L4.ICMPType == fm.echo) {
					// Sum every End record of the connection: on a loaded
					// machine a late packet (a retransmitted FIN, an RST)
					// can arrive after the sweeper ended the connection and
					// start a record of its own. Each packet must still be
					// counted exactly once, in some record.
					mu.Lock()
					k := [2]uint8{uint8(fm.version), f.L4.Protocol}
					cur := *f
					if prev, ok := ended[k]; ok {
						if cur.IP.Source == fm.pod && prev.IP.Source == fm.host { // a stray started by the pod
							c := cur.Counters
							cur.Counters = api.Counters{PacketsForward: c.PacketsReply, BytesForward: c.BytesReply,
								PacketsReply: c.PacketsForward, BytesReply: c.BytesForward}
						}
						f := &cur
						sum := *f
						if prev.L4.TCPFlags&api.TCPFlagSYN != 0 {
							sum = prev
						}
						sum.Counters.PacketsForward = prev.Counters.PacketsForward + f.Counters.PacketsForward
						sum.Counters.BytesForward = prev.Counters.BytesForward + f.Counters.BytesForward
						sum.Counters.PacketsReply = prev.Counters.PacketsReply + f.Counters.PacketsReply
						sum.Counters.BytesReply = prev.Counters.BytesReply + f.Counters.BytesReply
						sum.L4.TCPFlags = prev.L4.TCPFlags | f.L4.TCPFlags
						ended[k] = sum
					} else {
						ended[k] = cur
					}
					mu.Unlock()
				}
			}
		})
	}()

	for _, fm := range fams {
		vethTraffic(t, l, fm)
		if t.Failed() {
			return
		}
	}

	// Wait until every connection's End records add up to what the oracle
	// saw: a stray record of late packets ends an IdleTimeout after the
	// connection's own.
	allCounted := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, fm := range fams {
			for _, proto := range []uint8{api.ProtoTCP, api.ProtoUDP, fm.icmpProto} {
				f, ok := ended[[2]uint8{uint8(fm.version), proto}]
				if !ok || f.Counters != tp.counters(uint8(fm.version*2+2), proto, true) {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(15 * time.Second) // a loaded CI machine: no End before IdleTimeout
	for time.Now().Before(deadline) && !allCounted() {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, fm := range fams {
		for _, proto := range []uint8{api.ProtoTCP, api.ProtoUDP, fm.icmpProto} {
			f, ok := ended[[2]uint8{uint8(fm.version), proto}]
			if !ok {
				t.Errorf("IPv%d: no End record for protocol %d", fm.version*2+2, proto)
				continue
			}
			if f.IP.Source != fm.host || f.IP.Destination != fm.pod {
				t.Errorf("%v proto %d: %v -> %v, want the host as initiator", fm.version, proto, f.IP.Source, f.IP.Destination)
			}
			if f.InitiatorHook != api.TrafficDirectionEgress {
				t.Errorf("%v proto %d: initiator hook %v, want egress (the host sends out of %s)", fm.version, proto, f.InitiatorHook, l.host)
			}
			if want := tp.counters(uint8(fm.version*2+2), proto, true); f.Counters != want || want.PacketsForward == 0 {
				t.Errorf("%v proto %d: counters %+v, want %+v (AF_PACKET)", fm.version, proto, f.Counters, want)
			}
		}
		v := uint8(fm.version*2 + 2)
		if want := tp.counters(v, api.ProtoUDP, true); want.PacketsForward != 5 || want.PacketsReply != 0 {
			t.Errorf("oracle saw IPv%d UDP %+v, want 5 datagrams one way", v, want)
		}
		if want := tp.counters(v, fm.icmpProto, true); want.PacketsForward != 3 || want.PacketsReply != 3 {
			t.Errorf("oracle saw IPv%d ICMP %+v, want 3 echo requests and 3 replies", v, want)
		}
		if f := ended[[2]uint8{uint8(fm.version), api.ProtoTCP}]; f.L4.TCPFlags&(api.TCPFlagSYN|api.TCPFlagFIN) != api.TCPFlagSYN|api.TCPFlagFIN || f.L4.DestinationPort != 8080 {
			t.Errorf("IPv%d tcp flags %v port %d", v, f.L4.TCPFlags, f.L4.DestinationPort)
		}
	}
	if s := d.Stats(); s.FlowsEnded < uint64(3*len(fams)) || s.EventsRead+s.EventsLost != s.EventsEmitted {
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

// vethTraffic makes one TCP connection (3000 bytes host to pod, both
// close), five UDP datagrams to the pod and three pings of the pod.
func vethTraffic(t *testing.T, l *vethLab, fm family) {
	t.Helper()
	var ln net.Listener
	var udp net.PacketConn
	l.inNS(t, func() {
		var err error
		if ln, err = net.Listen(fm.tcp, netip.AddrPortFrom(fm.pod, 8080).String()); err != nil {
			t.Errorf("listen: %v", err)
		}
		if udp, err = net.ListenPacket(fm.udp, netip.AddrPortFrom(fm.pod, 9999).String()); err != nil {
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
	c, err := net.Dial(fm.tcp, netip.AddrPortFrom(fm.pod, 8080).String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := c.Write(make([]byte, 3000)); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.Close()

	uc, err := net.Dial(fm.udp, netip.AddrPortFrom(fm.pod, 9999).String())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := uc.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	uc.Close()

	// The pod's kernel answers; IPv6 raw sockets fill in the ICMPv6 checksum.
	ic, err := net.ListenPacket(fm.icmp, fm.host.String())
	if err != nil {
		t.Fatalf("icmp socket: %v", err)
	}
	defer ic.Close()
	for seq := range 3 {
		msg := []byte{fm.echo, 0, 0, 0, 0x12, 0x34, 0, byte(seq), 'p', 'i', 'n', 'g'}
		if fm.version == api.IPv4 {
			cs := icmpChecksum(msg)
			msg[2], msg[3] = byte(cs>>8), byte(cs)
		}
		if _, err := ic.WriteTo(msg, &net.IPAddr{IP: fm.pod.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		_ = ic.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 100)
		for {
			n, _, err := ic.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no echo reply: %v", err)
			}
			if n > 0 && buf[0] == fm.echo+1 || n > 0 && fm.version == api.IPv4 && buf[0] == 0 {
				break // the reply; an ICMPv6 socket also gets neighbour discovery
			}
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
