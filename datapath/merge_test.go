package datapath

import (
	"net/netip"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// mergeRig runs a merger over synthetic kernel events and keeps what it
// emits.
type mergeRig struct {
	m     *merger
	got   []api.Flow
	stats mergeStats
	bad   int
	in    int    // events handed to the merger
	sweep uint64 // ns between sweeps
}

// balanced checks the merger's part of the decoder's account: every event
// it took is a record's own, merged into another's, held, or bad.
func (r *mergeRig) balanced(t *testing.T, when string) {
	t.Helper()
	folded, held := r.stats.folded.Load(), r.stats.held.Load()
	if uint64(r.in) != uint64(len(r.got))+folded+held+uint64(r.bad) {
		t.Errorf("%s: %d events in != %d records + %d merged + %d held + %d bad",
			when, r.in, len(r.got), folded, held, r.bad)
	}
}

func newMergeRig(t *testing.T) *mergeRig {
	t.Helper()
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := &mergeRig{sweep: uint64(cfg.sweepEvery().Nanoseconds())}
	dec := NewDecoder(FixedClock(boot), 1)
	r.m = newMerger(dec, func(f *api.Flow) { r.got = append(r.got, *f) }, func() { r.bad++ }, cfg, &r.stats)
	return r
}

// The connection of these tests: client 198.18.0.2:40000 (behind veth 10,
// where its packets enter the node) to server 198.18.0.3:80 (behind veth
// 20, where they leave it).
const (
	clientVeth = 10
	serverVeth = 20
	ms         = uint64(time.Millisecond)
)

var (
	clientIP = netip.MustParseAddr("198.18.0.2")
	serverIP = netip.MustParseAddr("198.18.0.3")
)

// pt is an event of the connection at one point: kind, interface, hook,
// time, forward packets (bytes are 100 per packet).
func pt(kind uint8, ifindex uint32, hook uint8, ts, fwd uint64) flowEvent {
	ev := flowEvent{
		Ts: ts, FirstSeen: 1, LastSeen: ts,
		PacketsFwd: fwd, BytesFwd: 100 * fwd, PacketsRev: 1, BytesRev: 100,
		Ifindex: ifindex, Sport: 40000, Dport: 80, TcpFlags: 0x02,
		Kind: kind, Family: 4, Proto: api.ProtoTCP, Hook: hook, SrcIsInitiator: 1,
		Verdict: uint8(tcFlowFlowVerdictFLOW_VERDICT_FORWARDED),
	}
	copy(ev.Saddr[:], clientIP.AsSlice())
	copy(ev.Daddr[:], serverIP.AsSlice())
	return ev
}

func atClient(kind uint8, ts, fwd uint64) flowEvent {
	return pt(kind, clientVeth, hookIngress, ts, fwd)
}
func atServer(kind uint8, ts, fwd uint64) flowEvent { return pt(kind, serverVeth, hookEgress, ts, fwd) }

func withVerdict(ev flowEvent, v tcFlowFlowVerdict) flowEvent {
	ev.Verdict = uint8(v)
	return ev
}

// sockOf is the close of a socket of the connection: the client's
// (local 198.18.0.2:40000, it opened the connection) or the server's.
func sockOf(client bool, pid uint32, ts uint64) flowEvent {
	ev := flowEvent{Ts: ts, Kind: kindSock, Family: 4, Proto: api.ProtoTCP, Pid: pid, CgroupId: uint64(pid) * 10}
	local, remote, lport, rport := clientIP, serverIP, uint16(40000), uint16(80)
	if !client {
		local, remote, lport, rport = serverIP, clientIP, 80, 40000
	}
	copy(ev.Saddr[:], local.AsSlice())
	copy(ev.Daddr[:], remote.AsSlice())
	ev.Sport, ev.Dport = lport, rport
	if client {
		ev.SrcIsInitiator = 1
	}
	copy(ev.Comm[:], []int8{'a', 'p', 'p'})
	return ev
}

// v4MappedSock is ev as an IPv6 socket of a dual-stack listener reports
// it: family 6, IPv4-mapped addresses.
func v4MappedSock(ev flowEvent) flowEvent {
	for _, a := range []*[16]byte{&ev.Saddr, &ev.Daddr} {
		v4 := netip.AddrFrom4([4]byte(a[:4]))
		*a = netip.AddrFrom16(v4.As16()).As16()
	}
	ev.Family = 6
	return ev
}

type mergeStep func(r *mergeRig)

func in(evs ...flowEvent) mergeStep {
	return func(r *mergeRig) {
		for i := range evs {
			r.in++
			r.m.event(&evs[i])
		}
	}
}

func batchAt(boot uint64) mergeStep { return func(r *mergeRig) { r.m.endOfBatch(boot) } }
func sweepAt(boot uint64) mergeStep { return func(r *mergeRig) { r.m.endOfSweep(boot) } }

// wantRecord is what a test checks of an emitted record.
type wantRecord struct {
	event          api.EventKind
	ifindex, other uint32
	fwd, otherFwd  uint64 // forward packets of each point
	verdict        api.Verdict
	pid, dstPID    uint32
	typ            api.FlowType
}

func recordOf(f *api.Flow) wantRecord {
	return wantRecord{
		event: f.Event, ifindex: f.Interface.Index, other: f.Other.Interface.Index,
		fwd: f.Counters.PacketsForward, otherFwd: f.Other.Counters.PacketsForward,
		verdict: f.Verdict, pid: f.Process.PID, dstPID: f.DestinationProcess.PID, typ: f.Type,
	}
}

func TestMergerMakesOneRecordOfAConnection(t *testing.T) {
	const fwd, aud, drop = tcFlowFlowVerdictFLOW_VERDICT_FORWARDED, tcFlowFlowVerdictFLOW_VERDICT_AUDIT, tcFlowFlowVerdictFLOW_VERDICT_DROPPED
	start := api.EventStart
	end := api.EventEnd
	l34 := api.FlowTypeL3L4
	s := 2 * uint64(time.Second)
	tests := []struct {
		name  string
		steps []mergeStep
		want  []wantRecord
	}{
		{
			name: "a connection seen at two veths is one START and one End with both points",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms+10, 1)), batchAt(5 * ms),
				in(atClient(kindEnd, s, 5), atServer(kindEnd, s, 5)), sweepAt(s)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 5, otherFwd: 5, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name: "counts that differ between the points stay each point's own",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1), atClient(kindEnd, s, 7), atServer(kindEnd, s, 4)),
				sweepAt(s)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 7, otherFwd: 4, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name:  "the point with the more severe verdict speaks for the connection",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), withVerdict(atServer(kindStart, ms, 1), aud))},
			want:  []wantRecord{{event: start, ifindex: serverVeth, other: clientVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictAudit, typ: l34}},
		},
		{
			name:  "a point seen alone waits its hold, then goes out alone",
			steps: []mergeStep{in(atClient(kindStart, ms, 1)), batchAt(ms + ms/2), batchAt(3 * ms)},
			want:  []wantRecord{{event: start, ifindex: clientVeth, fwd: 1, verdict: api.VerdictForwarded, typ: l34}},
		},
		{
			name: "a companion that comes late and agrees is folded in",
			steps: []mergeStep{in(atClient(kindStart, ms, 1)), batchAt(10 * ms), in(atServer(kindStart, 11*ms, 1)),
				in(atClient(kindEnd, s, 3), atServer(kindEnd, s, 3)), sweepAt(s)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, fwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 3, otherFwd: 3, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name:  "a companion that comes late with a verdict of its own is a STATE",
			steps: []mergeStep{in(atClient(kindStart, ms, 1)), batchAt(10 * ms), in(withVerdict(atServer(kindStart, 11*ms, 1), drop))},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, fwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: api.EventState, ifindex: serverVeth, other: clientVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictDropped, typ: l34},
			},
		},
		{
			name: "a reused 5-tuple keeps the old connection's counts apart from the new one's",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)), batchAt(5 * ms),
				in(atClient(kindEnd, s, 9), atClient(kindStart, s, 1), atServer(kindEnd, s, 8), atServer(kindStart, s, 1)),
				batchAt(s + 5*ms)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 9, otherFwd: 8, verdict: api.VerdictForwarded, typ: l34},
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name: "the closes of both sockets fold into the connection's End",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)), batchAt(5 * ms),
				in(sockOf(true, 11, 6*ms), sockOf(false, 22, 6*ms), atClient(kindEnd, s, 3), atServer(kindEnd, s, 3)), sweepAt(s)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 3, otherFwd: 3, verdict: api.VerdictForwarded, pid: 11, dstPID: 22, typ: l34},
			},
		},
		{
			name: "the close of a dual-stack socket (IPv4-mapped addresses) folds into its IPv4 connection",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)), batchAt(5 * ms),
				in(v4MappedSock(sockOf(false, 22, 6*ms)), atClient(kindEnd, s, 3), atServer(kindEnd, s, 3)), sweepAt(s)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 3, otherFwd: 3, verdict: api.VerdictForwarded, dstPID: 22, typ: l34},
			},
		},
		{
			name:  "a socket whose connection the flow programs never saw is a record of its own",
			steps: []mergeStep{in(sockOf(true, 11, ms))},
			want:  []wantRecord{{event: api.EventSock, pid: 11, verdict: api.VerdictTraced, typ: api.FlowTypeSock}},
		},
		{
			name:  "a third interface gets records of its own",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1), pt(kindStart, 30, hookEgress, ms, 1))},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: start, ifindex: 30, fwd: 1, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name:  "two points at the same hook do not pair",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), pt(kindStart, 30, hookIngress, ms, 1)), batchAt(5 * ms)},
			want: []wantRecord{
				{event: start, ifindex: 30, fwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: start, ifindex: clientVeth, fwd: 1, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name: "an End whose companion ends in the next sweep waits for it",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)), batchAt(5 * ms),
				in(atClient(kindEnd, s, 3)), sweepAt(s), in(atServer(kindEnd, s+ms, 3)), sweepAt(s + s/4)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, other: serverVeth, fwd: 3, otherFwd: 3, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name: "an End whose companion does not end in time goes out alone, and so does the companion's",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)), batchAt(5 * ms),
				in(atClient(kindEnd, s, 3)), sweepAt(s), sweepAt(4 * s), in(atServer(kindEnd, 5*s, 4)), sweepAt(5 * s)},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: clientVeth, fwd: 3, verdict: api.VerdictForwarded, typ: l34},
				{event: end, ifindex: serverVeth, fwd: 4, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name: "the periodic reports of both points are one record",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)),
				in(atClient(kindPeriodic, 5*s, 50), atServer(kindPeriodic, 5*s+ms/10, 50))},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: api.EventPeriodic, ifindex: clientVeth, other: serverVeth, fwd: 50, otherFwd: 50, verdict: api.VerdictForwarded, typ: l34},
			},
		},
		{
			name: "a verdict change goes out at once with the companion's last counts",
			steps: []mergeStep{in(atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)),
				in(withVerdict(atServer(kindState, s, 2), drop))},
			want: []wantRecord{
				{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34},
				{event: api.EventState, ifindex: serverVeth, other: clientVeth, fwd: 2, otherFwd: 1, verdict: api.VerdictDropped, typ: l34},
			},
		},
		{
			name:  "a verdict of 0 (no policy) agrees with FORWARDED",
			steps: []mergeStep{in(withVerdict(atClient(kindStart, ms, 1), 0), withVerdict(atServer(kindStart, ms, 1), fwd))},
			want:  []wantRecord{{event: start, ifindex: clientVeth, other: serverVeth, fwd: 1, otherFwd: 1, verdict: api.VerdictForwarded, typ: l34}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newMergeRig(t)
			for _, s := range tt.steps {
				s(r)
				r.balanced(t, "after a step")
			}
			got := len(r.got)
			r.m.flush()
			r.balanced(t, "flushed")
			if h := r.stats.held.Load(); h != 0 {
				t.Errorf("flushed, %d events still held", h)
			}
			r.got = r.got[:got] // what the steps emitted
			if r.bad != 0 {
				t.Errorf("%d events did not decode", r.bad)
			}
			if len(r.got) != len(tt.want) {
				for _, f := range r.got {
					t.Logf("got %+v", recordOf(&f))
				}
				t.Fatalf("%d records, want %d", len(r.got), len(tt.want))
			}
			for i := range tt.want {
				if got := recordOf(&r.got[i]); got != tt.want[i] {
					t.Errorf("record %d:\n got %+v\nwant %+v", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestMergerKeepsEachPointsPoliciesAndDirection(t *testing.T) {
	r := newMergeRig(t)
	a, b := atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)
	r.m.event(&a)
	r.m.event(&b)
	if len(r.got) != 1 {
		t.Fatalf("%d records, want 1", len(r.got))
	}
	f := &r.got[0]
	if f.IP.Source != clientIP || f.IP.Destination != serverIP || f.L4.DestinationPort != 80 {
		t.Errorf("record %v:%d -> %v:%d, want the client to the server's port 80", f.IP.Source, f.L4.SourcePort, f.IP.Destination, f.L4.DestinationPort)
	}
	if f.InitiatorHook != api.TrafficDirectionIngress || f.Other.InitiatorHook != api.TrafficDirectionEgress {
		t.Errorf("hooks %v and %v, want ingress (client's veth) and egress (server's)", f.InitiatorHook, f.Other.InitiatorHook)
	}
	var own, other api.Flow
	if !f.Observations(&own, &other) || own.Interface.Index != clientVeth || other.Interface.Index != serverVeth ||
		other.Counters != f.Other.Counters || other.InitiatorHook != api.TrafficDirectionEgress {
		t.Errorf("observations %+v / %+v", own.Observation(), other.Observation())
	}
}

func TestMergerForgetsConnectionsTheTableEvicted(t *testing.T) {
	r := newMergeRig(t)
	a, b := atClient(kindStart, ms, 1), atServer(kindStart, ms, 1)
	r.m.event(&a)
	r.m.event(&b)
	r.m.endOfSweep(ms + r.m.gcNs/2)
	if len(r.m.conns) != 1 {
		t.Fatalf("%d connections tracked before the gc age, want 1", len(r.m.conns))
	}
	r.m.endOfSweep(2*ms + r.m.gcNs)
	if len(r.m.conns) != 0 || len(r.m.held) != 0 {
		t.Fatalf("%d connections (%d held) tracked after the gc age, want none", len(r.m.conns), len(r.m.held))
	}
}

func TestMergerAllocatesNothingPerConnection(t *testing.T) {
	r := newMergeRig(t)
	r.m.emit = func(*api.Flow) {}
	evs := []flowEvent{atClient(kindStart, ms, 1), atServer(kindStart, ms, 1), sockOf(true, 11, 2*ms), sockOf(false, 22, 2*ms),
		atClient(kindEnd, s2, 3), atServer(kindEnd, s2, 3)}
	run := func() {
		for i := range evs {
			r.m.event(&evs[i])
		}
		r.m.endOfSweep(s2)
	}
	run() // the first connection sizes the maps and the free list
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Fatalf("%v allocations per connection, want 0", n)
	}
}

const s2 = 2 * uint64(time.Second)
