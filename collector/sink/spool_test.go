package sink

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// switchSink is a recordSink that fails every write while down.
type switchSink struct {
	recordSink
	down atomic.Bool
}

func (s *switchSink) Write(ctx context.Context, batch []api.Flow) error {
	if s.down.Load() {
		return errors.New("sink down")
	}
	return s.recordSink.Write(ctx, batch)
}

func spoolOptions(dir string, maxBytes int64) QueueOptions {
	return QueueOptions{Capacity: 1000, BatchSize: 50, FlushInterval: 5 * time.Millisecond,
		RetryBackoff: 5 * time.Millisecond, SpoolDir: dir, SpoolMaxBytes: maxBytes}
}

// offerAll offers ports [from, to) and returns how many were refused.
func offerAll(q *Queue, from, to int) (refused int) {
	for i := from; i < to; i++ {
		if !q.Offer(flowWithPort(uint16(i))) {
			refused++
		}
		if i%50 == 49 {
			time.Sleep(2 * time.Millisecond) // let Run spool: a steady stream, not one burst
		}
	}
	return refused
}

// offerPaced offers ports [from, to) as a stream the spool can keep up with
// on a loaded machine: after every 50 flows it waits (up to a second) until
// the ring is at most half full, which is the headroom the spool needs. It
// returns how many were refused.
func offerPaced(q *Queue, from, to, capacity int) (refused int) {
	for i := from; i < to; i++ {
		if !q.Offer(flowWithPort(uint16(i))) {
			refused++
		}
		if i%50 == 49 {
			deadline := time.Now().Add(time.Second)
			for q.Stats().Queued > capacity/2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	return refused
}

func checkInOrder(t *testing.T, ports []uint16, want int) {
	t.Helper()
	if len(ports) != want {
		t.Fatalf("sink got %d flows, want %d", len(ports), want)
	}
	for i, p := range ports {
		if p != uint16(i) {
			t.Fatalf("flow %d has port %d: order lost", i, p)
		}
	}
}

func TestSpoolHoldsAnOutageTheRingCannotAndReplaysInOrder(t *testing.T) {
	const n = 20000 // 20 times the ring
	s := &switchSink{recordSink: recordSink{name: "sw"}}
	q := newTestQueue(t, s, spoolOptions(t.TempDir(), 1<<30))
	stop := runFanout(NewFanout([]*Queue{q}))
	offerAll(q, 0, 100)
	waitFor(t, func() bool { return q.Stats().Written == 100 })
	s.down.Store(true)
	if r := offerPaced(q, 100, n-1000, 1000); r != 0 {
		t.Fatalf("%d flows refused during the outage", r)
	}
	if st := q.Stats(); st.Spooled == 0 {
		t.Fatalf("nothing spooled during the outage: %+v", st)
	}
	s.down.Store(false)
	if r := offerPaced(q, n-1000, n, 1000); r != 0 { // newer flows while the spool is written back
		t.Fatalf("%d flows refused during the replay", r)
	}
	waitFor(t, func() bool { return q.Stats().Written == n })
	stop()
	ports, _ := s.got()
	checkInOrder(t, ports, n)
	if st := q.Stats(); st != (Stats{Written: n}) {
		t.Errorf("stats %+v, want Written %d only", st, n)
	}
	if err := q.Close(); err != nil {
		t.Error(err)
	}
}

func TestSpoolTooSmallDropsAndCountsExactly(t *testing.T) {
	const n = 3000
	s := &switchSink{recordSink: recordSink{name: "sw"}}
	s.down.Store(true)
	q := newTestQueue(t, s, spoolOptions(t.TempDir(), 64<<10)) // a few segments
	stop := runFanout(NewFanout([]*Queue{q}))
	refused := offerAll(q, 0, n)
	st := q.Stats()
	if st.Dropped == 0 || st.Spooled == 0 {
		t.Fatalf("stats %+v: want some spooled and some dropped", st)
	}
	s.down.Store(false)
	waitFor(t, func() bool { st := q.Stats(); return st.Queued == 0 && st.Spooled == 0 })
	stop()
	st = q.Stats()
	ports, _ := s.got()
	if uint64(len(ports))+st.Dropped != n || st.Written != uint64(len(ports)) || st.Failed != 0 {
		t.Errorf("sink got %d, stats %+v: written + dropped != %d offered", len(ports), st, n)
	}
	t.Logf("offered %d: written %d, dropped %d (%d by Offer)", n, st.Written, st.Dropped, refused)
	for i := 1; i < len(ports); i++ {
		if ports[i] <= ports[i-1] {
			t.Fatalf("flow %d has port %d after %d: order lost", i, ports[i], ports[i-1])
		}
	}
	q.Close()
}

func TestARestartedQueueWritesWhatTheLastOneSpooled(t *testing.T) {
	dir := t.TempDir()
	down := &switchSink{recordSink: recordSink{name: "sw"}}
	down.down.Store(true)
	o := spoolOptions(dir, 1<<30)
	o.DrainTimeout = 20 * time.Millisecond
	q1 := newTestQueue(t, down, o)
	if _, err := NewQueue(down, o); err == nil {
		t.Fatal("a second queue opened the same spool directory")
	}
	stop := runFanout(NewFanout([]*Queue{q1}))
	offerAll(q1, 0, 1000)
	stop()
	st1 := q1.Stats()
	if st1 != (Stats{Spooled: 1000}) {
		t.Fatalf("first queue stats %+v, want all 1000 spooled at shutdown", st1)
	}
	q1.Close()
	if err := q1.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}

	up := &recordSink{name: "up"}
	q2 := newTestQueue(t, up, o)
	if st := q2.Stats(); st.Spooled != 1000 {
		t.Fatalf("second queue found %d spooled flows, want 1000", st.Spooled)
	}
	stop = runFanout(NewFanout([]*Queue{q2}))
	offerAll(q2, 1000, 1500) // newer flows wait for the old ones
	waitFor(t, func() bool { return q2.Stats().Written == 1500 })
	stop()
	ports, _ := up.got()
	checkInOrder(t, ports, 1500)
	if st := q2.Stats(); st != (Stats{Written: 1500}) {
		t.Errorf("second queue stats %+v", st)
	}
	q2.Close()
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix)); len(left) != 0 {
		t.Errorf("segments left after replay: %v", left)
	}
}

func TestTruncatedOrCorruptSegmentsAreCountedNotFatal(t *testing.T) {
	tests := []struct {
		name   string
		damage func(data []byte) []byte
	}{
		{name: "a segment cut short (a crash mid-write) loses its flows", damage: func(d []byte) []byte { return d[:len(d)/2] }},
		{name: "a segment with a flipped byte fails its checksum", damage: func(d []byte) []byte { d[len(d)-3] ^= 0xff; return d }},
		{name: "an empty segment file", damage: func([]byte) []byte { return nil }},
		{name: "a segment whose length field is huge", damage: func(d []byte) []byte { d[len(segmentMagic)+3] = 0xff; return d }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, err := openSpool(dir, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			for b := range 3 {
				batch := make([]api.Flow, 10)
				for i := range batch {
					batch[i] = *flowWithPort(uint16(b*10 + i))
				}
				if err := sp.append(batch); err != nil {
					t.Fatal(err)
				}
			}
			last := sp.path(sp.segs[2])
			sp.close()
			data, err := os.ReadFile(last)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(last, tt.damage(data), 0o640); err != nil {
				t.Fatal(err)
			}
			s := &recordSink{name: "rec"}
			q := newTestQueue(t, s, spoolOptions(dir, 1<<30))
			stop := runFanout(NewFanout([]*Queue{q}))
			waitFor(t, func() bool { st := q.Stats(); return st.Spooled == 0 })
			stop()
			q.Close()
			ports, _ := s.got()
			checkInOrder(t, ports, 20)
			if st := q.Stats(); st != (Stats{Written: 20, Corrupt: 10}) {
				t.Errorf("stats %+v, want 20 written and 10 corrupt", st)
			}
		})
	}
}

func TestSpoolSegmentsKeepEveryField(t *testing.T) {
	now := time.Unix(1_800_000_000, 123456789)
	f := api.Flow{
		Time: now, UUID: [16]byte{1, 2, 3, 15: 16}, Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDenied,
		IP:          api.IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("fd00::2"), Version: api.IPv4},
		L4:          api.L4{Protocol: api.ProtoTCP, SourcePort: 1234, DestinationPort: 80, TCPFlags: api.TCPFlagSYN},
		Source:      api.Endpoint{ID: 1, Identity: 2, Namespace: "ns", PodName: "pod", Workload: "w", Labels: []string{"k8s:app=a"}},
		Destination: api.Endpoint{Namespace: "other"},
		Type:        api.FlowType(2), TrafficDirection: api.TrafficDirectionEgress, NodeName: "node", IsReply: true,
		Interface: api.Interface{Index: 7, Name: "veth7"},
		Event:     api.EventEnd, StartTime: now.Add(-time.Second), EndTime: now,
		Counters:         api.Counters{PacketsForward: 1, BytesForward: 2, PacketsReply: 3, BytesReply: 1 << 40},
		Process:          api.Process{PID: 9, Comm: "curl", CgroupID: 99},
		InitiatorHook:    api.TrafficDirectionIngress,
		IngressAllowedBy: []api.PolicyRef{{Name: "a", Namespace: "ns", Kind: "CiliumNetworkPolicy", Revision: 4}}, EgressAllowedBy: []api.PolicyRef{{Name: "b"}},
		IngressDeniedBy: []api.PolicyRef{{Name: "c", Kind: "NetworkPolicy"}}, EgressDeniedBy: []api.PolicyRef{{Name: "d", Revision: 1}},
	}
	sp, err := openSpool(t.TempDir(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if err := sp.append([]api.Flow{f}); err != nil {
		t.Fatal(err)
	}
	got, lost, err := sp.readHead(nil)
	if err != nil || lost != 0 || len(got) != 1 {
		t.Fatalf("readHead: %d flows, %d lost, %v", len(got), lost, err)
	}
	g := got[0]
	if !g.Time.Equal(f.Time) || !g.StartTime.Equal(f.StartTime) || !g.EndTime.Equal(f.EndTime) {
		t.Errorf("times %v %v %v, want %v %v %v", g.Time, g.StartTime, g.EndTime, f.Time, f.StartTime, f.EndTime)
	}
	g.Time, g.StartTime, g.EndTime = f.Time, f.StartTime, f.EndTime
	if !reflect.DeepEqual(g, f) {
		t.Errorf("read back\n%+v\nwant\n%+v", g, f)
	}
}
