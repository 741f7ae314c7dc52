package datapath

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/periscope-dev/periscope/api"
)

var boot = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// eventBytes serialises ev the way the kernel lays it out.
func eventBytes(ev flowEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&ev)), EventSize)...)
}

func v4Event(kind uint8, srcIsInit uint8) flowEvent {
	ev := flowEvent{
		Ts: 3e9, FirstSeen: 1e9, LastSeen: 2e9,
		PacketsFwd: 10, BytesFwd: 1000, PacketsRev: 8, BytesRev: 9000,
		Ifindex: 7, Sport: 80, Dport: 40000, TcpFlags: 0x12,
		Kind: kind, Family: 4, Proto: api.ProtoTCP, Hook: 1, SrcIsInitiator: srcIsInit,
	}
	copy(ev.Saddr[:], []byte{198, 18, 0, 1})
	copy(ev.Daddr[:], []byte{198, 18, 0, 2})
	return ev
}

func TestDecode(t *testing.T) {
	sock := v4Event(5, 1)
	sock.Pid, sock.CgroupId = 42, 99
	for i, c := range "curl" {
		sock.Comm[i] = int8(c)
	}
	icmp6 := flowEvent{Kind: 1, Family: 6, Proto: api.ProtoICMPv6, SrcIsInitiator: 1, IcmpType: 128, Sport: 9, Hook: 2}
	copy(icmp6.Saddr[:], netip.MustParseAddr("fd00::1").AsSlice())
	copy(icmp6.Daddr[:], netip.MustParseAddr("fd00::2").AsSlice())

	tests := []struct {
		name    string
		raw     []byte
		wantErr bool
		check   func(t *testing.T, f *api.Flow)
	}{
		{name: "a short sample is an error", raw: make([]byte, EventSize-1), wantErr: true},
		{name: "an all-zero event has an unknown kind", raw: make([]byte, EventSize), wantErr: true},
		{name: "an unknown family is an error", raw: func() []byte { e := v4Event(1, 1); e.Family = 5; return eventBytes(e) }(), wantErr: true},
		{name: "an unknown kind is an error", raw: eventBytes(v4Event(9, 1)), wantErr: true},
		{name: "a bad initiator flag is an error", raw: eventBytes(v4Event(1, 2)), wantErr: true},
		{name: "a sock event for UDP is an error", raw: func() []byte { e := sock; e.Proto = 17; return eventBytes(e) }(), wantErr: true},
		{
			name: "a key whose dst initiated is turned around", raw: eventBytes(v4Event(2, 0)),
			check: func(t *testing.T, f *api.Flow) {
				if f.IP.Source != netip.MustParseAddr("198.18.0.2") || f.L4.SourcePort != 40000 || f.L4.DestinationPort != 80 {
					t.Errorf("source %v:%d -> %d, want 198.18.0.2:40000 -> 80", f.IP.Source, f.L4.SourcePort, f.L4.DestinationPort)
				}
				if f.Event != api.EventState || f.Type != api.FlowTypeL3L4 || f.IP.Version != api.IPv4 || f.InitiatorHook != api.TrafficDirectionIngress {
					t.Errorf("event %v type %v version %v hook %v", f.Event, f.Type, f.IP.Version, f.InitiatorHook)
				}
				want := api.Counters{PacketsForward: 10, BytesForward: 1000, PacketsReply: 8, BytesReply: 9000}
				if f.Counters != want {
					t.Errorf("counters %+v, want %+v", f.Counters, want)
				}
				if !f.Time.Equal(boot.Add(3*time.Second)) || !f.StartTime.Equal(boot.Add(time.Second)) || !f.EndTime.Equal(boot.Add(2*time.Second)) {
					t.Errorf("times %v %v %v", f.Time, f.StartTime, f.EndTime)
				}
				if f.UUID[6]>>4 != 4 || f.Interface.Index != 7 || f.L4.TCPFlags != api.TCPFlagSYN|api.TCPFlagACK {
					t.Errorf("uuid %x ifindex %d flags %v", f.UUID, f.Interface.Index, f.L4.TCPFlags)
				}
			},
		},
		{
			name: "a sock event carries the process", raw: eventBytes(sock),
			check: func(t *testing.T, f *api.Flow) {
				want := api.Process{PID: 42, Comm: "curl", CgroupID: 99}
				if f.Type != api.FlowTypeSock || f.Process != want || f.InitiatorHook != 0 {
					t.Errorf("type %v process %+v hook %v, want SOCK %+v", f.Type, f.Process, f.InitiatorHook, want)
				}
				if f.Verdict != api.VerdictTraced {
					t.Errorf("verdict %v, want TRACED: a socket's state is no policy verdict", f.Verdict)
				}
			},
		},
		{
			name: "an ICMPv6 event keeps type and code and no ports", raw: eventBytes(icmp6),
			check: func(t *testing.T, f *api.Flow) {
				if f.IP.Version != api.IPv6 || f.IP.Destination != netip.MustParseAddr("fd00::2") || f.L4.ICMPType != 128 || f.L4.SourcePort != 0 {
					t.Errorf("ip %+v l4 %+v", f.IP, f.L4)
				}
			},
		},
	}
	dec := NewDecoder(FixedClock(boot), 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := api.Flow{NodeName: "stale", IsReply: true}
			err := dec.Decode(tt.raw, &f)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if f.NodeName != "" || f.IsReply {
				t.Errorf("reused flow not reset: %+v", f)
			}
			tt.check(t, &f)
		})
	}
}

func TestDecodeAllocatesNothing(t *testing.T) {
	dec := NewDecoder(FixedClock(boot), 1)
	raw := eventBytes(v4Event(1, 1))
	var f api.Flow
	if n := testing.AllocsPerRun(1000, func() { _ = dec.Decode(raw, &f) }); n != 0 {
		t.Fatalf("%v allocations per decode, want 0", n)
	}
}

func FuzzDecode(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzDecode; add the valid shapes too.
	f.Add(eventBytes(v4Event(1, 1)))
	f.Add(eventBytes(v4Event(5, 0)))
	dec := NewDecoder(FixedClock(boot), 1)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fl api.Flow
		if err := dec.Decode(raw, &fl); err == nil && fl.Event == api.EventUnknown {
			t.Fatalf("decoded without error to an unknown event kind")
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzDecode when asked
// (PERISCOPE_WRITE_SEEDS=1).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PERISCOPE_WRITE_SEEDS") == "" {
		t.Skip("a generator, not a test (never needed in CI): set PERISCOPE_WRITE_SEEDS=1 to rewrite the fuzz seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := v4Event(1, 1)
	bad.Family = 0
	seeds := map[string][]byte{
		"tcp_start_v4": eventBytes(v4Event(1, 1)),
		"sock_v4":      eventBytes(v4Event(5, 1)),
		"bad_family":   eventBytes(bad),
		"short":        eventBytes(v4Event(1, 1))[:40],
		"empty":        {},
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + quote(b) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func quote(b []byte) string {
	s := `"`
	for _, c := range b {
		s += `\x` + string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])
	}
	return s + `"`
}
