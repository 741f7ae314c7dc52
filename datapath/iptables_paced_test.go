package datapath

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/xdpflood"
)

// Rounds of BenchmarkPolicyVsIptablesPaced (about a minute in all).
const (
	vsCapRound    = 2 * time.Second // one drop-capacity measurement
	vsCapRounds   = 2               // turns of each mode, interleaved
	vsPacedRounds = 3               // paced latency runs of each mode, interleaved
	vsPacedRTTs   = 2000            // round trips per paced latency run
)

// The CPUs of the paced flood: the generator on one, the flooder's host
// veth's NAPI thread (where the flood is received, judged and dropped) on
// the other, with the allowed round trips.
var vsPaced = vsPlacement{name: "paced", flood: 0, rtt: 1}

// BenchmarkPolicyVsIptablesPaced measures the p99 latency of allowed round
// trips while denied packets arrive at a fixed rate, the regime of a real
// flood: it arrives whatever the enforcer does; an enforcer that cannot
// keep up saturates its CPU and its queue fills (and refuses frames), one
// that can has headroom. Same lab and policy as BenchmarkPolicyVsIptables.
//
// Receive is made asynchronous to the generator: the flooder's host veth
// (GRO on, so it has NAPI) gets threaded NAPI (sysfs threaded = 1, restored
// at the end), and its NAPI thread is pinned to the round trips' CPU; the
// generator runs on the other CPU. The generator's redirects only fill the
// veth's 256-frame receive ring and wake the thread; everything after —
// skb, GRO, the flooder's TC, bridge, the server's host veth where
// Periscope drops, the server's netns where iptables drops (through the
// backlog, run by the thread's softirq on its CPU, or ksoftirqd there) —
// runs on the round trips' CPU. The NAPI thread and the generator run
// SCHED_FIFO (vsFIFO): receive work has priority over tasks on a real host
// (softirq), and on this shared machine other tenants' tasks would
// otherwise set how much CPU the flood gets (the ring then overflows while
// the thread waits to run, whatever the enforcer costs), and deschedule
// the generator off its rate. The kernel's RT throttling still leaves
// other tasks 5% of each CPU.
//
//  1. Capacity: the unpaced generator (as fast as it can, the ring always
//     full) for vsCapRound per mode, interleaved; the capacity is dropped
//     packets per second of wall time on the NAPI thread's CPU (per CPU-
//     second of the thread and that CPU's ksoftirqd beside it).
//  2. The rate: R = √(capacity(Periscope) × capacity(iptables)), the
//     geometric mean of the two measured in this run: each enforcer is the
//     same factor from R, one below (headroom), one above (saturated).
//  3. vsPacedRounds runs per mode (none, Periscope, iptables), interleaved:
//     the generator offers R frames/s, evenly spaced (xdpflood.RunPaced:
//     the program sends a frame when one is due and drops its repetitions
//     between), and vsPacedRTTs allowed round trips are timed on the NAPI
//     thread's CPU. Reported per run: the rate offered (and frames given up
//     when the generator fell behind), the frames the veth's ring took and
//     refused (tx_queue_0_xdp_xmit / _errors of the flooder's eth0),
//     dropped/s, the NAPI CPU's busy share, the p99.
//
// Run with: go test -run '^$' -bench BenchmarkPolicyVsIptablesPaced -benchtime 1x ./datapath/
func BenchmarkPolicyVsIptablesPaced(b *testing.B) {
	l, ctx := newVsLab(b)
	flood := l.newFlood(b, true)
	napi := l.pacedNAPI(b, vsNAPIFIFO)

	for b.Loop() {
		rate, caps := l.pacedCapacity(b, ctx, flood, napi)
		capOf := caps.of

		// (2) p99 of allowed round trips under the paced flood.
		p99s := map[vsMode][]float64{}
		paced := map[vsMode][]vsPacedStats{}
		for range vsPacedRounds {
			for _, m := range []vsMode{vsNone, vsPeriscope, vsIptables} {
				l.setMode(b, m)
				var p99 float64
				var offered xdpflood.Paced
				s := l.pacedRound(b, napi, func() {
					p99 = l.rttP99During(b, ctx, l.pacedFlood(flood, rate, &offered), vsPaced.rtt, vsPacedRTTs)
				})
				s.offered, s.behind = offered.Rate(), float64(offered.Behind)/offered.Elapsed.Seconds()
				b.Logf("paced %-9v p99 %4.0f µs, %s", m, p99/1e3, s)
				p99s[m] = append(p99s[m], p99)
				paced[m] = append(paced[m], s)
			}
		}

		b.ReportMetric(rate, "paced-pkt/s")
		for _, m := range []vsMode{vsPeriscope, vsIptables} {
			b.ReportMetric(capOf(m), "cap-pkt/s-"+m.String())
			b.ReportMetric(meanOf(caps[m], func(s vsPacedStats) float64 { return s.dropped / s.cpu }), "cap-pkt/cpu-s-"+m.String())
		}
		b.ReportMetric(capOf(vsPeriscope)/capOf(vsIptables), "cap-periscope/iptables")
		for _, m := range []vsMode{vsNone, vsPeriscope, vsIptables} {
			b.ReportMetric(mean(p99s[m])/1e3, "p99-µs-paced-"+m.String())
			b.ReportMetric(meanOf(paced[m], func(s vsPacedStats) float64 { return s.offered }), "offered-pkt/s-"+m.String())
			b.ReportMetric(meanOf(paced[m], func(s vsPacedStats) float64 { return s.refused }), "refused-pkt/s-"+m.String())
			b.ReportMetric(meanOf(paced[m], func(s vsPacedStats) float64 { return s.cpu }), "napi-cpu-"+m.String())
		}
		b.ReportMetric(mean(p99s[vsPeriscope])/mean(p99s[vsIptables]), "p99paced-periscope/iptables")
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range p99s[vsPeriscope] {
			r := p99s[vsPeriscope][i] / p99s[vsIptables][i]
			lo, hi = min(lo, r), max(hi, r)
		}
		b.Logf("p99 paced: none %s µs, periscope %s µs, iptables %s µs; periscope/iptables %.2f (per round %.2f–%.2f)",
			usRange(p99s[vsNone]), usRange(p99s[vsPeriscope]), usRange(p99s[vsIptables]),
			mean(p99s[vsPeriscope])/mean(p99s[vsIptables]), lo, hi)
	}
}

// vsNAPISched is how the flooder's host veth's NAPI thread is scheduled.
type vsNAPISched struct {
	name string
	fifo int // SCHED_FIFO priority; 0: SCHED_OTHER
	nice int // with SCHED_OTHER
}

var (
	// vsNAPIFIFO has priority over every task, as softirq has on a real
	// host, but RT throttling stops it for 50 ms of a second when it never
	// sleeps.
	vsNAPIFIFO = vsNAPISched{name: "SCHED_FIFO 50", fifo: vsFIFO}
	// vsNAPIFair shares its CPU fairly with the round trips' threads, as
	// ksoftirqd does with tasks when softirqs overrun; nice -20 for them
	// all keeps the machine's other tenants from setting the flood's CPU.
	vsNAPIFair = vsNAPISched{name: "SCHED_OTHER nice -20", nice: -20}
)

// pacedNAPI gives the flooder's host veth threaded NAPI (restored by
// Cleanup), pins its threads to vsPaced.rtt, schedules them as s says,
// and returns their PIDs.
func (l *vsLab) pacedNAPI(b *testing.B, s vsNAPISched) []int {
	b.Helper()
	napi, restore, err := netlab.ThreadedNAPI(l.flooder.HostVeth.Name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := restore(); err != nil {
			b.Error(err)
		}
	})
	var set unix.CPUSet
	set.Set(vsPaced.rtt)
	for _, pid := range napi {
		if err := unix.SchedSetaffinity(pid, &set); err != nil {
			b.Fatalf("pin napi thread %d to cpu %d: %v", pid, vsPaced.rtt, err)
		}
		if err := setFIFO(pid, s.fifo); err != nil {
			b.Fatal(err)
		}
		if s.fifo == 0 && s.nice != 0 {
			if err := unix.Setpriority(unix.PRIO_PROCESS, pid, s.nice); err != nil {
				b.Fatalf("nice %d for napi thread %d: %v", s.nice, pid, err)
			}
		}
	}
	b.Logf("napi threads of %s: %v, pinned to cpu %d, %s; generator on cpu %d",
		l.flooder.HostVeth.Name, napi, vsPaced.rtt, s.name, vsPaced.flood)
	return napi
}

// pacedCapacity measures each enforcer's drop capacity on the NAPI
// thread's CPU (the unpaced generator, the ring always full, vsCapRounds
// turns of vsCapRound, interleaved) and returns the paced rate R, their
// geometric mean, and the rounds.
func (l *vsLab) pacedCapacity(b *testing.B, ctx context.Context, flood *xdpflood.Generator, napi []int) (float64, vsCaps) {
	b.Helper()
	caps := vsCaps{}
	for range vsCapRounds {
		for _, m := range []vsMode{vsPeriscope, vsIptables} {
			l.setMode(b, m)
			fctx, cancel := context.WithTimeout(ctx, vsCapRound)
			s := l.pacedRound(b, napi, func() {
				err := onCPUFIFO(vsPaced.flood, func() error {
					return l.flooder.Do(func() error { return flood.Run(fctx) })
				})
				if err != nil {
					b.Fatalf("flood: %v", err)
				}
			})
			cancel()
			b.Logf("capacity %-9v %s", m, s)
			caps[m] = append(caps[m], s)
		}
	}
	rate := math.Sqrt(caps.of(vsPeriscope) * caps.of(vsIptables))
	b.Logf("capacity periscope %.0f pkt/s, iptables %.0f pkt/s: geometric mean %.0f pkt/s", caps.of(vsPeriscope), caps.of(vsIptables), rate)
	return rate, caps
}

// vsCaps are the capacity rounds of each enforcer.
type vsCaps map[vsMode][]vsPacedStats

// of is m's capacity: the mean of its rounds' drops per second.
func (c vsCaps) of(m vsMode) float64 {
	return meanOf(c[m], func(s vsPacedStats) float64 { return s.dropped })
}

// pacedFlood is a flood for rttDuring: the generator offering rate
// frames/s from vsPaced.flood until its context is done, what it offered
// left in offered.
func (l *vsLab) pacedFlood(flood *xdpflood.Generator, rate float64, offered *xdpflood.Paced) func(context.Context) error {
	return func(ctx context.Context) error {
		return onCPUFIFO(vsPaced.flood, func() error {
			return l.flooder.Do(func() (err error) {
				*offered, err = flood.RunPaced(ctx, rate)
				return err
			})
		})
	}
}

// usRange is the mean of nanosecond figures and their range, in µs.
func usRange(ns []float64) string {
	return fmt.Sprintf("%.0f (%.0f–%.0f)", mean(ns)/1e3, slices.Min(ns)/1e3, slices.Max(ns)/1e3)
}

// vsPacedStats are rates of one round of the asynchronous flood, per
// second of wall time.
type vsPacedStats struct {
	offered, behind   float64 // frames offered by a paced generator; given up by it
	taken, refused    float64 // frames the veth's ring took and refused
	received, dropped float64 // frames the host veth received; the enforcer dropped
	// cpu is the busy share of the NAPI thread's CPU by the flood: the
	// thread and that CPU's ksoftirqd.
	cpu float64
	// soft is the part of cpu ksoftirqd ran (fair-scheduled, not FIFO).
	soft float64
}

func (s vsPacedStats) String() string {
	out := ""
	if s.offered > 0 {
		out = fmt.Sprintf("offered %.0f pkt/s (%.0f given up), ", s.offered, s.behind)
	}
	cpu := s.dropped / s.cpu
	return out + fmt.Sprintf("ring took %.0f refused %.0f, received %.0f, dropped %.0f pkt/s, %.0f pkt/cpu-s; napi cpu %.0f%% (ksoftirqd %.0f%%)",
		s.taken, s.refused, s.received, s.dropped, cpu, 100*s.cpu, 100*s.soft)
}

// vsPacedCounts are the counters of a round at one instant.
type vsPacedCounts struct {
	xmit, xmitErr, received uint64
	dropped                 map[tcFlowFlowKey]uint64
	cpu, soft               time.Duration
}

func (l *vsLab) pacedCounts(b *testing.B, napi []int) vsPacedCounts {
	b.Helper()
	var c vsPacedCounts
	err := l.flooder.Do(func() error {
		st, err := netlab.EthtoolStats("eth0")
		c.xmit, c.xmitErr = st["tx_queue_0_xdp_xmit"], st["tx_queue_0_xdp_xmit_errors"]
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	link, err := netlink.LinkByName(l.flooder.HostVeth.Name)
	if err != nil {
		b.Fatalf("find %s: %v", l.flooder.HostVeth.Name, err)
	}
	c.received = link.Attrs().Statistics.RxPackets
	c.dropped = l.droppedCount(b)
	for _, pid := range napi {
		t, err := taskCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		c.cpu += t
	}
	soft, err := ksoftirqdCPU(vsPaced.rtt)
	if err != nil {
		b.Fatal(err)
	}
	c.cpu += soft
	c.soft = soft
	return c
}

// pacedRound runs flood (which returns when its round is over) and
// returns the rates of the round.
func (l *vsLab) pacedRound(b *testing.B, napi []int, flood func()) vsPacedStats {
	b.Helper()
	before := l.pacedCounts(b, napi)
	start := time.Now()
	flood()
	time.Sleep(20 * time.Millisecond) // the ring is drained by now
	secs := time.Since(start).Seconds()
	after := l.pacedCounts(b, napi)
	var drops uint64
	for k, v := range after.dropped {
		drops += v - before.dropped[k]
	}
	return vsPacedStats{
		taken:    float64(after.xmit-before.xmit) / secs,
		refused:  float64(after.xmitErr-before.xmitErr) / secs,
		received: float64(after.received-before.received) / secs,
		dropped:  float64(drops) / secs,
		cpu:      (after.cpu - before.cpu).Seconds() / secs,
		soft:     (after.soft - before.soft).Seconds() / secs,
	}
}

// vsFIFO is the real-time priority of the NAPI thread and the generator.
const vsFIFO = 50

// setFIFO makes the thread tid (0: the calling one) SCHED_FIFO at prio, or
// SCHED_OTHER again with prio 0.
func setFIFO(tid, prio int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0} // SCHED_OTHER
	if prio > 0 {
		attr.Policy, attr.Priority = unix.SCHED_FIFO, uint32(prio)
	}
	if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr(%d, policy %d, prio %d): %w", tid, attr.Policy, prio, err)
	}
	return nil
}

// onCPUFIFO runs fn as onCPU does, the thread SCHED_FIFO at vsFIFO
// meanwhile.
func onCPUFIFO(cpu int, fn func() error) error {
	return onCPU(cpu, func() error {
		if err := setFIFO(0, vsFIFO); err != nil {
			return err
		}
		err := fn()
		return errors.Join(err, setFIFO(0, 0))
	})
}
