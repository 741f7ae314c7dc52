package datapath

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/periscope-dev/periscope/api"
)

// passThrough loads the baseline: a TC program that only returns TCX_NEXT.
func passThrough(b *testing.B) *ebpf.Program {
	b.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		b.Fatalf("load pass-through: %v", err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkTCProgram measures the flow program on a TCP packet of an existing
// flow against the pass-through baseline in the same run.
func BenchmarkTCProgram(b *testing.B) {
	benchTC(b, loadForTest(b, Config{ReportInterval: time.Hour}))
}

func benchTC(b *testing.B, d *Datapath) {
	base := passThrough(b)
	syn := v4("198.18.0.2", "198.18.0.1", 6, tcpHeader(40000, 80, 0x02))
	ack := v4("198.18.0.2", "198.18.0.1", 6, append(tcpHeader(40000, 80, 0x10), make([]byte, 100)...))
	if _, err := runPacket(b, d.objs.FlowIngress, syn); err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 100000)
	b.ResetTimer()
	_, flowDur, err := d.objs.FlowIngress.Benchmark(ack, n, nil)
	if err != nil {
		b.Fatalf("benchmark flow program: %v", err)
	}
	_, baseDur, err := base.Benchmark(ack, n, nil)
	if err != nil {
		b.Fatalf("benchmark pass-through: %v", err)
	}
	b.StopTimer()
	flowNs, baseNs := float64(flowDur.Nanoseconds()), float64(baseDur.Nanoseconds())
	b.ReportMetric(flowNs, "flow-ns/pkt")
	b.ReportMetric(baseNs, "passthrough-ns/pkt")
	b.ReportMetric(flowNs-baseNs, "extra-ns/pkt")
	b.ReportMetric(flowNs/baseNs, "x-passthrough")
}

// fillRing emits n START events through the flow program (distinct flows).
func fillRing(b *testing.B, d *Datapath, next *int, n int) {
	b.Helper()
	for range n {
		i := *next
		*next++
		pkt := v4("198.18.0.1", "198.18.0.2", 17, udpHeader(uint16(i), uint16(i>>16)+1, 4))
		if _, err := runPacket(b, d.objs.FlowIngress, pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// readAll reads n events with a reused Record, decoding them when dec is
// set, and returns the time it took and the allocations it made.
func readAll(b *testing.B, d *Datapath, n int, dec *Decoder) (time.Duration, uint64) {
	b.Helper()
	var rec ringbuf.Record
	var f api.Flow
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	start := time.Now()
	for range n {
		if err := d.reader.ReadInto(&rec); err != nil {
			b.Fatalf("read: %v", err)
		}
		if dec != nil {
			if err := dec.Decode(rec.RawSample, &f); err != nil {
				b.Fatalf("decode: %v", err)
			}
		}
	}
	dur := time.Since(start)
	runtime.ReadMemStats(&ms)
	return dur, ms.Mallocs - mallocs
}

// BenchmarkDecode measures ring buffer to decoded api.Flow against a bare
// ring-buffer read of the same number of events in the same run.
func BenchmarkDecode(b *testing.B) {
	d := loadForTest(b, Config{FlowTableSize: 1 << 16})
	dec := NewDecoder(d.clock, 1)
	const batch = 10000
	var next int
	var decDur, bareDur time.Duration
	var decAllocs uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		fillRing(b, d, &next, n)
		dur, _ := readAll(b, d, n, nil)
		bareDur += dur
		fillRing(b, d, &next, n)
		b.StartTimer()
		dur, allocs := readAll(b, d, n, dec)
		b.StopTimer()
		decDur += dur
		decAllocs += allocs
	}
	if s := d.Stats(); s.EventsLost != 0 {
		b.Fatal(errors.New("events lost during the benchmark"))
	}
	decRate := float64(b.N) / decDur.Seconds()
	bareRate := float64(b.N) / bareDur.Seconds()
	b.ReportMetric(decRate, "decoded-events/s")
	b.ReportMetric(bareRate, "bare-read-events/s")
	b.ReportMetric(decRate/bareRate, "x-bare-read")
	b.ReportMetric(float64(decAllocs)/float64(b.N), "allocs/event")
}
