package metrics

import (
	"net/netip"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

func TestDeltasCountEachPacketOnce(t *testing.T) {
	conn := func(sport uint16, ev api.EventKind, pkts, bytes uint64) *api.Flow {
		return &api.Flow{
			Event: ev,
			IP:    api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3")},
			L4:    api.L4{Protocol: api.ProtoTCP, SourcePort: sport, DestinationPort: 80},
			Counters: api.Counters{PacketsForward: pkts, BytesForward: bytes,
				PacketsReply: pkts / 2, BytesReply: bytes / 2},
		}
	}
	steps := []struct {
		name      string
		flow      *api.Flow
		wantPkts  uint64
		wantBytes uint64
	}{
		{"the first record counts all it carries", conn(1000, api.EventStart, 2, 200), 2, 200},
		{"a later record counts only what is new", conn(1000, api.EventPeriodic, 10, 1000), 8, 800},
		{"the end counts the rest and forgets the connection", conn(1000, api.EventEnd, 12, 1200), 2, 200},
		{"a reused tuple after the end counts from zero", conn(1000, api.EventStart, 1, 100), 1, 100},
		{"it then grows as before", conn(1000, api.EventPeriodic, 3, 300), 2, 200},
		{"a recreated entry (smaller counters) counts from zero", conn(1000, api.EventState, 1, 60), 1, 60},
		{"socket events carry no traffic", conn(1000, api.EventSock, 50, 5000), 0, 0},
	}
	d := NewDeltas(16)
	for _, s := range steps {
		got := d.Delta(s.flow)
		if got.PacketsForward != s.wantPkts || got.BytesForward != s.wantBytes {
			t.Fatalf("%s: got %d packets / %d bytes, want %d / %d", s.name, got.PacketsForward, got.BytesForward, s.wantPkts, s.wantBytes)
		}
	}
}

func TestDeltasEvictWhenFullAndCountIt(t *testing.T) {
	d := NewDeltas(2)
	for port := uint16(1); port <= 5; port++ {
		d.Delta(&api.Flow{Event: api.EventStart, L4: api.L4{SourcePort: port}})
	}
	tracked, evicted := d.Stats()
	if tracked != 2 || evicted != 3 {
		t.Fatalf("tracked %d, evicted %d; want 2 and 3", tracked, evicted)
	}
}

func TestDeltasCountAConnectionOfTwoPointsOnceAtItsEntry(t *testing.T) {
	rec := func(ev api.EventKind, entryPkts, exitPkts uint64, exitSpeaks bool) *api.Flow {
		entry := api.Observation{Interface: api.Interface{Index: 10}, InitiatorHook: api.TrafficDirectionIngress,
			Counters: api.Counters{PacketsForward: entryPkts, BytesForward: 100 * entryPkts}}
		exit := api.Observation{Interface: api.Interface{Index: 20}, InitiatorHook: api.TrafficDirectionEgress,
			Counters: api.Counters{PacketsForward: exitPkts, BytesForward: 100 * exitPkts}}
		own, other := entry, exit
		if exitSpeaks { // the exit dropped it: the record speaks from there
			own, other = exit, entry
		}
		return &api.Flow{Event: ev, L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 1000, DestinationPort: 80},
			Interface: own.Interface, InitiatorHook: own.InitiatorHook, Counters: own.Counters, Other: other}
	}
	d := NewDeltas(16)
	var total uint64
	for _, f := range []*api.Flow{rec(api.EventStart, 1, 1, false), rec(api.EventState, 4, 3, true), rec(api.EventEnd, 6, 3, true)} {
		total += d.Delta(f).PacketsForward
	}
	if total != 6 {
		t.Fatalf("counted %d packets, want the entry's 6 (neither both points' 9 nor a mix of the two)", total)
	}
}
