package datapath

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/periscope-dev/periscope/api"
)

// segment is one TCP packet of a conversation between client
// 198.18.0.2:40000 and server 198.18.0.1:80.
type segment struct {
	fromClient bool
	flags      uint8
	payload    int
}

func (s segment) packet() []byte {
	src, dst, sport, dport := "198.18.0.1", "198.18.0.2", uint16(80), uint16(40000)
	if s.fromClient {
		src, dst, sport, dport = dst, src, dport, sport
	}
	return v4(src, dst, 6, append(tcpHeader(sport, dport, s.flags), make([]byte, s.payload)...))
}

// count adds s to c, oriented from the client.
func (s segment) count(c *api.Counters) {
	n := uint64(len(s.packet()))
	if s.fromClient {
		c.PacketsForward++
		c.BytesForward += n
	} else {
		c.PacketsReply++
		c.BytesReply += n
	}
}

const (
	fin    = 0x01
	syn    = 0x02
	rst    = 0x04
	psh    = 0x08
	ack    = 0x10
	synAck = syn | ack
)

func TestTCPPortReuseStartsANewFlow(t *testing.T) {
	d := loadForTest(t, Config{})
	handshake := []segment{{true, syn, 0}, {false, synAck, 0}, {true, ack, 0}, {true, psh | ack, 100}, {false, ack, 0}}
	closeBothWays := []segment{{true, fin | ack, 0}, {false, fin | ack, 0}, {true, ack, 0}}
	tests := []struct {
		name     string
		old      []segment // the first connection
		reused   bool      // the new SYN must end it and start another flow
		followUp []segment // after the new SYN
	}{
		{name: "a SYN after FIN both ways starts a new flow", old: cat2(handshake, closeBothWays), reused: true,
			followUp: []segment{{false, synAck, 0}, {true, ack, 0}, {true, psh | ack, 7}}},
		{name: "a SYN after an RST starts a new flow", old: []segment{{true, syn, 0}, {false, rst | ack, 0}}, reused: true},
		{name: "a SYN after an RST mid-connection starts a new flow", old: cat2(handshake, []segment{{true, rst, 0}}), reused: true},
		{name: "a retransmitted SYN stays in its flow", old: []segment{{true, syn, 0}}},
		{name: "a SYN on a half-closed connection stays in its flow", old: cat2(handshake, []segment{{true, fin | ack, 0}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearFlows(t, d)
			drain(t, d)
			before := d.Stats()
			var oldCounts, newCounts api.Counters
			for _, s := range tt.old {
				runOK(t, d, s.packet())
				s.count(&oldCounts)
			}
			drain(t, d)

			second := cat2([]segment{{true, syn, 0}}, tt.followUp)
			for _, s := range second {
				runOK(t, d, s.packet())
				s.count(&newCounts)
			}
			if !tt.reused {
				for _, s := range second {
					s.count(&oldCounts)
				}
			}
			flows := drain(t, d)
			var ends, starts []api.Flow
			for _, f := range flows {
				switch f.Event {
				case api.EventEnd:
					ends = append(ends, f)
				case api.EventStart:
					starts = append(starts, f)
				}
			}
			after := d.Stats()

			if !tt.reused {
				if len(ends) != 0 || len(starts) != 0 {
					t.Fatalf("got %d End and %d Start events, want none: %+v", len(ends), len(starts), flows)
				}
				if got := tableCounters(t, d); got != oldCounts {
					t.Errorf("table counters %+v, want %+v (one flow)", got, oldCounts)
				}
				return
			}
			if len(ends) != 1 || len(starts) != 1 || flows[0].Event != api.EventEnd {
				t.Fatalf("events %v, want End then Start", kinds(flows))
			}
			end, start := ends[0], starts[0]
			if end.Counters != oldCounts {
				t.Errorf("End counters %+v, want the old connection's %+v", end.Counters, oldCounts)
			}
			if end.IP.Source != netip.MustParseAddr("198.18.0.2") || end.L4.SourcePort != 40000 || end.L4.DestinationPort != 80 {
				t.Errorf("End %v:%d -> %v:%d, want the client as source", end.IP.Source, end.L4.SourcePort, end.IP.Destination, end.L4.DestinationPort)
			}
			if start.IP.Source != netip.MustParseAddr("198.18.0.2") || start.L4.TCPFlags != api.TCPFlagSYN {
				t.Errorf("Start %v flags %v, want from the client with SYN only", start.IP.Source, start.L4.TCPFlags)
			}
			if want := (api.Counters{PacketsForward: 1, BytesForward: uint64(len(segment{true, syn, 0}.packet()))}); start.Counters != want {
				t.Errorf("Start counters %+v, want %+v", start.Counters, want)
			}
			if got := tableCounters(t, d); got != newCounts {
				t.Errorf("table counters %+v, want the new connection's %+v", got, newCounts)
			}
			if got := after.FlowsEnded - before.FlowsEnded; got != 1 {
				t.Errorf("Stats.FlowsEnded grew by %d, want 1", got)
			}
			if got := after.FlowsStarted - before.FlowsStarted; got != 2 {
				t.Errorf("Stats.FlowsStarted grew by %d, want 2", got)
			}
		})
	}
}

func TestLongFlowEmitsPeriodicReports(t *testing.T) {
	const interval = 100 * time.Millisecond
	d := loadForTest(t, Config{ReportInterval: interval})
	pkt := v4("198.18.0.1", "198.18.0.2", 17, udpHeader(5000, 53, 32))
	runOK(t, d, pkt)
	if got := kinds(drain(t, d)); len(got) != 1 || got[0] != api.EventStart {
		t.Fatalf("events %v, want one Start", got)
	}
	var last uint64 = 1
	for round := range 3 {
		// Packets within the interval are counted silently.
		runOK(t, d, pkt)
		if got := drain(t, d); len(got) != 0 {
			t.Fatalf("round %d: %v within the interval, want no event", round, kinds(got))
		}
		time.Sleep(interval + 20*time.Millisecond)
		runOK(t, d, pkt)
		flows := drain(t, d)
		if len(flows) != 1 || flows[0].Event != api.EventPeriodic {
			t.Fatalf("round %d: events %v, want one Periodic", round, kinds(flows))
		}
		c := flows[0].Counters
		want := last + 2
		if c.PacketsForward != want || c.BytesForward != want*uint64(len(pkt)) || c.PacketsReply != 0 {
			t.Errorf("round %d: counters %+v, want %d packets of %d bytes", round, c, want, len(pkt))
		}
		if !flows[0].EndTime.After(flows[0].StartTime) {
			t.Errorf("round %d: end %v not after start %v", round, flows[0].EndTime, flows[0].StartTime)
		}
		last = want
	}
}

func TestLoopbackIsCountedOnceOnIngress(t *testing.T) {
	d := loadForTest(t, Config{})
	ns := newNetns(t)
	var (
		idx     int
		entries []tcFlowFlowValue
	)
	inNetns(t, ns, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Errorf("find lo: %v", err)
			return
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			t.Errorf("up lo: %v", err)
			return
		}
		idx = lo.Attrs().Index
		if err := d.AttachInterface("lo"); err != nil {
			t.Errorf("attach lo: %v", err)
			return
		}
		for at, want := range map[ebpf.AttachType]int{ebpf.AttachTCXIngress: 1, ebpf.AttachTCXEgress: 0} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: at})
			if err != nil || len(res.Programs) != want {
				t.Errorf("%v: %d programs (%v), want %d", at, len(res.Programs), err, want)
			}
		}
		ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		defer ln.Close()
		c, err := net.Dial("udp4", ln.LocalAddr().String())
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		for range 3 {
			if _, err := c.Write(make([]byte, 10)); err != nil {
				t.Errorf("write: %v", err)
			}
		}
		// Detach here: the link's interface lives in this namespace.
		if err := d.DetachInterface("lo"); err != nil {
			t.Errorf("detach lo: %v", err)
		}
	})
	if t.Failed() {
		return
	}
	var k tcFlowFlowKey
	var v tcFlowFlowValue
	it := d.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		if k.Ifindex == uint32(idx) && k.Proto == api.ProtoUDP {
			entries = append(entries, v)
		}
	}
	if len(entries) != 1 {
		t.Fatalf("%d UDP flows on lo, want 1", len(entries))
	}
	v = entries[0]
	// 14 (zero Ethernet header) + 20 + 8 + 10 bytes each.
	if got := v.Packets[0] + v.Packets[1]; got != 3 || v.Bytes[0]+v.Bytes[1] != 3*52 {
		t.Errorf("packets %v bytes %v, want 3 packets of 52 bytes in all", v.Packets, v.Bytes)
	}
	if v.Hook != uint8(tcFlowFlowHookFLOW_HOOK_INGRESS) {
		t.Errorf("hook %d, want ingress", v.Hook)
	}
}

// runOK runs pkt through the ingress program and fails unless it passes.
func runOK(t *testing.T, d *Datapath, pkt []byte) {
	t.Helper()
	if ret, err := runPacket(t, d.objs.FlowIngress, pkt); err != nil || ret != tcxNext {
		t.Fatalf("run: ret %#x err %v", ret, err)
	}
}

// tableCounters returns the counters of the only flow in the table,
// oriented from its initiator.
func tableCounters(t *testing.T, d *Datapath) api.Counters {
	t.Helper()
	var k tcFlowFlowKey
	var v tcFlowFlowValue
	n := 0
	var ev flowEvent
	it := d.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		n++
		endEvent(&ev, &k, &v, 0)
	}
	if n != 1 {
		t.Fatalf("%d table entries, want 1", n)
	}
	return api.Counters{PacketsForward: ev.PacketsFwd, BytesForward: ev.BytesFwd, PacketsReply: ev.PacketsRev, BytesReply: ev.BytesRev}
}

func kinds(flows []api.Flow) []api.EventKind {
	out := make([]api.EventKind, len(flows))
	for i := range flows {
		out[i] = flows[i].Event
	}
	return out
}

func cat2[T any](parts ...[]T) []T {
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// newNetns creates an empty network namespace, closed by t.Cleanup.
func newNetns(t *testing.T) netns.NsHandle {
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
	return ns
}

// inNetns runs fn on a thread switched into ns.
func inNetns(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	(&vethLab{ns: ns}).inNS(t, fn)
}

func TestStatsEstimatesLRUEvictions(t *testing.T) {
	d := loadForTest(t, Config{FlowTableSize: 64})
	const flows = 1000
	for i := range flows {
		runOK(t, d, v4("198.18.0.1", "198.18.0.2", 17, udpHeader(uint16(10000+i), 53, 4)))
	}
	if err := newSweeper(d).sweep(func(*flowEvent) {}); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	live := flowCount(t, d)
	s := d.Stats()
	if s.FlowsStarted != flows || s.FlowsEvicted != uint64(flows-live) || live == 0 || live > 64 {
		t.Errorf("started %d evicted %d with %d live, want %d started and the rest evicted", s.FlowsStarted, s.FlowsEvicted, live, flows)
	}
}

func TestMapMemoryReportsEveryMapAtTheBudgetsSizes(t *testing.T) {
	d := loadForTest(t, Config{FlowBudget: 1024})
	if err := d.AttachSockTracepoint(); err != nil {
		t.Fatalf("attach sock tracepoint: %v", err)
	}
	byName := map[string]MapMemory{}
	var total uint64
	for _, m := range d.MapMemory() {
		byName[m.Name] = m
		total += m.Bytes
	}
	for name, want := range map[string]uint32{"flows": 2048, "socks": 2048, "events": 256 << 10, "ipcache_0": ipcacheHosts, "policy_1": policyKeys} {
		m, ok := byName[name]
		if !ok {
			t.Errorf("no map %s in %v", name, byName)
			continue
		}
		if m.MaxEntries != want || m.Bytes == 0 {
			t.Errorf("map %s: %d entries, %d bytes; want %d entries and some memory", name, m.MaxEntries, m.Bytes, want)
		}
	}
	// A preallocated LRU hash costs at least its entries' keys and values.
	if f := byName["flows"]; f.Type != "LRUHash" || f.Bytes < 2048*(44+88) {
		t.Errorf("flows %+v: want an LRU hash of at least 2048 keys and values", f)
	}
	t.Logf("maps of a 1024-connection budget: %.1f MiB", float64(total)/(1<<20))
}
