package collector_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// Traffic the test sends per address family.
const (
	e2eTCPBytes     = 256 << 10 // written by the client, then it closes
	e2eUDPCount     = 10        // datagrams each way
	e2eUDPSize      = 200       // UDP payload bytes
	e2ePingCount    = 5         // echo requests (each answered)
	e2ePingPayload  = 16        // netlab's Pod.Ping sends "periscope-netlab"
	e2eEthHeader    = 14        // what TC's skb->len and veth counters include below IP
	e2eUDPHeader    = 8
	e2eICMPHeader   = 8
	e2eCloseGrace   = time.Second // above any delay a loaded machine puts between packets
	e2eIdleTimeout  = time.Second
	e2eQuietForDone = e2eIdleTimeout + 700*time.Millisecond // idle timeout + sweep period + margin
)

func ipHeader(v6 bool) uint64 {
	if v6 {
		return 40
	}
	return 20
}

// e2eConn is one connection the test made and what it expects of its records.
type e2eConn struct {
	name             string
	v6               bool
	proto            uint8
	srcPort, dstPort uint16 // 0 for ICMP
	icmpType         uint8
	want             *api.Counters // exact counters; nil: checked against the veths
}

// TestE2EFlowsExactCounts runs TCP, UDP and ICMP between two pods over IPv4
// and IPv6 through the real datapath and collector, and checks every
// connection's End record, one per connection with both veths as its
// observation points: 5-tuple, enriched endpoints, direction, verdict and
// exact counts at each point. The sum of every flow record's points on a
// veth must equal the veth's own counters: the datapath misses no packet
// and counts the same length as the kernel (the L2 frame, skb->len).
func TestE2EFlowsExactCounts(t *testing.T) {
	labtest.RequireRoot(t)
	lab := newE2ELab(t)
	client, err := lab.AddPod(netlab.PodSpec{Name: "client", Labels: map[string]string{"app": "client"}})
	if err != nil {
		t.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "server", Namespace: "other", Labels: map[string]string{"app": "server"}})
	if err != nil {
		t.Fatal(err)
	}
	third, err := lab.AddPod(netlab.PodSpec{Name: "third", Labels: map[string]string{"app": "third"}})
	if err != nil {
		t.Fatal(err)
	}
	quietPods(t, lab, client, server, third)

	node := startE2ENode(t, &collector.Config{
		NodeName: "e2e",
		Endpoints: []collector.EndpointConfig{
			{Name: "client", Labels: map[string]string{"app": "client"}, NetNS: client.NetNSName},
			{Name: "server", Namespace: "other", Labels: map[string]string{"app": "server"}, NetNS: server.NetNSName},
			{Name: "third", Labels: map[string]string{"app": "third"}, NetNS: third.NetNSName},
		},
	}, datapath.Config{CloseGrace: e2eCloseGrace, IdleTimeout: e2eIdleTimeout}, 0)

	veths := []int{client.HostVeth.Index, server.HostVeth.Index, third.HostVeth.Index}
	before, seqBefore := settle(t, node, e2eQuietForDone, veths...)

	var conns []e2eConn
	for _, v6 := range []bool{false, true} {
		conns = append(conns, tcpExchange(t, client, server, v6))
		conns = append(conns, udpExchange(t, client, server, v6))
		conns = append(conns, pingExchange(t, client, server, v6))
	}

	after, seqAfter := settle(t, node, e2eQuietForDone, veths...)

	// Every flow ended in the window, from the store (with sequence numbers).
	var ended []api.Flow
	err = node.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
		if e.Seq > seqBefore && e.Seq <= seqAfter && e.Flow.Event == api.EventEnd {
			ended = append(ended, e.Flow)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The veths' counters are the sum of their flows' final counts, each
	// record counted at each of its points.
	var points []api.Flow
	for i := range ended {
		var own, other api.Flow
		if ended[i].Observations(&own, &other) {
			points = append(points, own, other)
		} else {
			points = append(points, ended[i])
		}
	}
	for _, idx := range veths {
		var got vethCounters
		n := 0
		for i := range points {
			f := &points[i]
			if int(f.Interface.Index) != idx {
				continue
			}
			n++
			fromPod := api.Counters{PacketsForward: f.Counters.PacketsForward, BytesForward: f.Counters.BytesForward,
				PacketsReply: f.Counters.PacketsReply, BytesReply: f.Counters.BytesReply}
			switch f.InitiatorHook {
			case api.TrafficDirectionIngress: // the initiator's packets came from the pod
			case api.TrafficDirectionEgress:
				fromPod.PacketsForward, fromPod.PacketsReply = fromPod.PacketsReply, fromPod.PacketsForward
				fromPod.BytesForward, fromPod.BytesReply = fromPod.BytesReply, fromPod.BytesForward
			default:
				t.Errorf("flow %s: initiator hook %v", describe(f), f.InitiatorHook)
			}
			got.RxPackets += fromPod.PacketsForward
			got.RxBytes += fromPod.BytesForward
			got.TxPackets += fromPod.PacketsReply
			got.TxBytes += fromPod.BytesReply
		}
		b, a := before[idx], after[idx]
		want := vethCounters{RxPackets: a.RxPackets - b.RxPackets, RxBytes: a.RxBytes - b.RxBytes,
			TxPackets: a.TxPackets - b.TxPackets, TxBytes: a.TxBytes - b.TxBytes}
		if got != want {
			t.Errorf("veth %d: %d flows sum to %+v, the veth counted %+v", idx, n, got, want)
		} else {
			t.Logf("veth %d: %d flows sum exactly to the veth's counters %+v", idx, n, want)
		}
	}

	// Each connection, as the HTTP API serves it: one End record, both
	// veths its points.
	wire := node.flows(t, "from:pod=client")
	for _, c := range conns {
		ends := findEnd(wire, c, client, server, client.HostVeth.Index)
		if len(ends) != 1 || ends[0].Other.Interface.Index != uint32(server.HostVeth.Index) {
			t.Errorf("%s: %d End records from the client's veth (%+v), want one whose other point is the server's veth",
				c.name, len(ends), ends)
			continue
		}
		var onClient, onServer api.Flow
		ends[0].Observations(&onClient, &onServer)
		checkEnd(t, c, onClient, api.TrafficDirectionEgress, api.TrafficDirectionIngress)
		checkEnd(t, c, onServer, api.TrafficDirectionIngress, api.TrafficDirectionEgress)
		// Hubble's trace points (hubble observe --type trace:from-endpoint).
		if p, ok := onClient.TracePoint(); !ok || p != api.TraceFromEndpoint {
			t.Errorf("%s: the client's veth is trace point %q (%v), want from-endpoint", c.name, p, ok)
		}
		if p, ok := onServer.TracePoint(); !ok || p != api.TraceToEndpoint {
			t.Errorf("%s: the server's veth is trace point %q (%v), want to-endpoint", c.name, p, ok)
		}
		if onClient.Counters != onServer.Counters {
			t.Errorf("%s: counters differ between the client's veth %+v and the server's %+v",
				c.name, onClient.Counters, onServer.Counters)
		}
		if c.proto == api.ProtoTCP && onClient.Counters.BytesForward < e2eTCPBytes {
			t.Errorf("%s: %d bytes forward, less than the %d the client wrote", c.name,
				onClient.Counters.BytesForward, e2eTCPBytes)
		}
		if len(findEnd(wire, c, client, server, third.HostVeth.Index)) != 0 {
			t.Errorf("%s: seen on the third pod's veth, which it never crossed", c.name)
		}
	}
}

// describe names a flow in messages.
func describe(f *api.Flow) string {
	return fmt.Sprintf("%s %s:%d->%s:%d (%s)", f.Interface.Name, f.IP.Source, f.L4.SourcePort,
		f.IP.Destination, f.L4.DestinationPort, f.Summary())
}

// findEnd returns the End records of c observed on the interface ifindex
// (at either of their points).
func findEnd(flows []api.Flow, c e2eConn, client, server *netlab.Pod, ifindex int) []api.Flow {
	var out []api.Flow
	for _, f := range flows {
		at := int(f.Interface.Index) == ifindex || int(f.Other.Interface.Index) == ifindex
		if f.Event != api.EventEnd || !at || f.L4.Protocol != c.proto ||
			f.IP.Source != client.Addr(c.v6) || f.IP.Destination != server.Addr(c.v6) {
			continue
		}
		if c.srcPort != 0 && (f.L4.SourcePort != c.srcPort || f.L4.DestinationPort != c.dstPort) {
			continue
		}
		out = append(out, f)
	}
	return out
}

// checkEnd checks one End record of c.
func checkEnd(t *testing.T, c e2eConn, f api.Flow, dir, hook api.TrafficDirection) {
	t.Helper()
	where := c.name + " on " + f.Interface.Name
	wantVersion := api.IPv4
	if c.v6 {
		wantVersion = api.IPv6
	}
	if f.IP.Version != wantVersion {
		t.Errorf("%s: IP version %v, want %v", where, f.IP.Version, wantVersion)
	}
	if f.Verdict != api.VerdictForwarded {
		t.Errorf("%s: verdict %v, want FORWARDED", where, f.Verdict)
	}
	if f.TrafficDirection != dir {
		t.Errorf("%s: traffic direction %v, want %v", where, f.TrafficDirection, dir)
	}
	if f.InitiatorHook != hook {
		t.Errorf("%s: initiator hook %v, want %v", where, f.InitiatorHook, hook)
	}
	if f.NodeName != "e2e" || f.Interface.Name == "" {
		t.Errorf("%s: node %q interface %q", where, f.NodeName, f.Interface.Name)
	}
	if c.icmpType != 0 && f.L4.ICMPType != c.icmpType {
		t.Errorf("%s: ICMP type %d, want %d", where, f.L4.ICMPType, c.icmpType)
	}
	if c.proto == api.ProtoTCP && f.L4.TCPFlags&(api.TCPFlagSYN|api.TCPFlagFIN|api.TCPFlagACK) != api.TCPFlagSYN|api.TCPFlagFIN|api.TCPFlagACK {
		t.Errorf("%s: TCP flags %v, want SYN, ACK and FIN", where, f.L4.TCPFlags)
	}
	checkEndpoint(t, where+": source", f.Source, "client", "default", "k8s:app=client")
	checkEndpoint(t, where+": destination", f.Destination, "server", "other", "k8s:app=server")
	if c.want != nil && f.Counters != *c.want {
		t.Errorf("%s: counters %+v, want %+v", where, f.Counters, *c.want)
	}
	if f.StartTime.IsZero() || f.EndTime.Before(f.StartTime) {
		t.Errorf("%s: start %v end %v", where, f.StartTime, f.EndTime)
	}
}

func checkEndpoint(t *testing.T, where string, ep api.Endpoint, pod, ns, label string) {
	t.Helper()
	if ep.PodName != pod || ep.Namespace != ns || !slices.Contains(ep.Labels, label) || ep.Identity == 0 {
		t.Errorf("%s: %+v, want pod %s/%s with label %s and an identity", where, ep, ns, pod, label)
	}
}

// tcpExchange: the client connects, writes e2eTCPBytes and closes; the server
// reads to EOF and closes.
func tcpExchange(t *testing.T, client, server *netlab.Pod, v6 bool) e2eConn {
	t.Helper()
	ln, err := server.ListenTCP(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	got := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, conn)
		got <- n
	}()
	conn, err := client.DialTCP(t.Context(), netip.AddrPortFrom(server.Addr(v6), port))
	if err != nil {
		t.Fatal(err)
	}
	sport := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
	if _, err := conn.Write(bytes.Repeat([]byte{'p'}, e2eTCPBytes)); err != nil {
		t.Fatalf("tcp write: %v", err)
	}
	conn.Close()
	if n := <-got; n != e2eTCPBytes {
		t.Fatalf("tcp: server read %d bytes, want %d", n, e2eTCPBytes)
	}
	return e2eConn{name: fam(v6) + " tcp", v6: v6, proto: api.ProtoTCP, srcPort: sport, dstPort: port}
}

// udpEcho serves UDP on a free port of server, echoing every datagram,
// until the test ends, and returns the port.
func udpEcho(t *testing.T, server *netlab.Pod) uint16 {
	t.Helper()
	srv, err := server.ListenUDP(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return uint16(srv.LocalAddr().(*net.UDPAddr).Port)
}

// udpExchange: the client sends e2eUDPCount datagrams of e2eUDPSize bytes,
// one at a time, and the server echoes each.
func udpExchange(t *testing.T, client, server *netlab.Pod, v6 bool) e2eConn {
	t.Helper()
	port := udpEcho(t, server)
	conn, err := client.DialUDP(t.Context(), netip.AddrPortFrom(server.Addr(v6), port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sport := uint16(conn.LocalAddr().(*net.UDPAddr).Port)
	msg := bytes.Repeat([]byte{'u'}, e2eUDPSize)
	buf := make([]byte, 2048)
	for i := range e2eUDPCount {
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("udp write %d: %v", i, err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := conn.Read(buf); err != nil || n != e2eUDPSize {
			t.Fatalf("udp reply %d: %d bytes, %v", i, n, err)
		}
	}
	per := uint64(e2eUDPSize+e2eUDPHeader+e2eEthHeader) + ipHeader(v6)
	return e2eConn{name: fam(v6) + " udp", v6: v6, proto: api.ProtoUDP, srcPort: sport, dstPort: port,
		want: &api.Counters{PacketsForward: e2eUDPCount, BytesForward: e2eUDPCount * per,
			PacketsReply: e2eUDPCount, BytesReply: e2eUDPCount * per}}
}

// pingExchange: e2ePingCount echo requests, all answered.
func pingExchange(t *testing.T, client, server *netlab.Pod, v6 bool) e2eConn {
	t.Helper()
	if n, err := client.Ping(t.Context(), server.Addr(v6), e2ePingCount); err != nil || n != e2ePingCount {
		t.Fatalf("ping: %d replies, %v", n, err)
	}
	proto, typ := api.ProtoICMPv4, uint8(8)
	if v6 {
		proto, typ = api.ProtoICMPv6, 128
	}
	per := uint64(e2ePingPayload+e2eICMPHeader+e2eEthHeader) + ipHeader(v6)
	return e2eConn{name: fam(v6) + " icmp", v6: v6, proto: proto, icmpType: typ,
		want: &api.Counters{PacketsForward: e2ePingCount, BytesForward: e2ePingCount * per,
			PacketsReply: e2ePingCount, BytesReply: e2ePingCount * per}}
}

func fam(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}
