package datapath

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab/xdpflood"
)

// Rounds of BenchmarkPolicyVsIptablesSharedIngress (about a minute in all).
const (
	vsSharedRounds = 3               // latency runs of each mode and rate, interleaved
	vsSharedRTTs   = 2000            // round trips wanted per run
	vsSharedLimit  = 4 * time.Second // no round trip starts after this
)

// vsSharedLoads are the flood rates of BenchmarkPolicyVsIptablesSharedIngress,
// as multiples of iptables' drop capacity measured in the same run: from a
// flood a quarter more than iptables drops to twice that.
var vsSharedLoads = []float64{1.25, 1.5, 2}

// BenchmarkPolicyVsIptablesSharedIngress measures the p99 latency of
// allowed requests that come in the way a flood of denied packets does:
// the flood and the requests share the flooder pod's path into the node
// (its host veth's 256-frame receive ring and NAPI thread), as a real
// flood shares a NIC's receive queue with the traffic it is mixed into.
// The flood comes from a denied address of the flooder pod (floodSrc), the
// requests from its own, allowed, address, over one TCP connection to the
// server: same lab, policy and iptables rules as BenchmarkPolicyVsIptables.
//
// An enforcer that cannot drop the flood as fast as it comes keeps the
// receive path full, and the requests queue behind the flood. One with
// headroom empties the ring between polls, and a request waits behind at
// most a ring of flood frames.
//
// The flood is paced as in BenchmarkPolicyVsIptablesPaced, but the NAPI
// thread is not real-time: it shares its CPU fairly with the client's and
// the server's threads (vsNAPIFair), as ksoftirqd does. A real-time thread
// that never sleeps (the saturated enforcer's) would starve them for 950 ms
// of every second and measure the scheduler.
//
//  1. Capacity of each enforcer, as BenchmarkPolicyVsIptablesPaced (the
//     unpaced flood, the ring always full).
//  2. For each load in vsSharedLoads, the flood rate is that multiple of
//     iptables' capacity: iptables is saturated at every one; Periscope
//     has less headroom at each. vsSharedRounds runs per mode (Periscope,
//     iptables), interleaved: the generator offers the rate while the
//     client in the flooder pod makes up to vsSharedRTTs round trips, none
//     started after vsSharedLimit. Reported per run: the p99, round trips
//     completed per second, the client's TCP retransmissions and the
//     flood's figures; per load, the ratio of the modes' mean p99s and the
//     median of the rounds' ratios (a round where this shared machine takes
//     Periscope's headroom away is one outlier, not a new mean).
//
// No policy at all is not a mode here: the flood then reaches the server's
// UDP stack, which costs more per packet than iptables' drop, so it is
// saturated at every load.
//
// Run with: go test -run '^$' -bench BenchmarkPolicyVsIptablesSharedIngress -benchtime 1x ./datapath/
func BenchmarkPolicyVsIptablesSharedIngress(b *testing.B) {
	l, ctx := newVsLab(b)
	flood := l.newFlood(b, true)
	napi := l.pacedNAPI(b, vsNAPIFair)

	for b.Loop() {
		_, caps := l.pacedCapacity(b, ctx, flood, napi)
		capOf := caps.of
		b.ReportMetric(capOf(vsPeriscope)/capOf(vsIptables), "cap-periscope/iptables")
		for _, load := range vsSharedLoads {
			rate := load * capOf(vsIptables)
			runs := map[vsMode][]vsRTTResult{}
			for range vsSharedRounds {
				for _, m := range []vsMode{vsPeriscope, vsIptables} {
					l.setMode(b, m)
					res, s := l.sharedRound(b, ctx, flood, napi, rate)
					b.Logf("%.2f× %-9v p99 %8.0f µs, %5.0f round trips/s (%d), %d retransmissions; %s",
						load, m, res.p99()/1e3, res.rate(), len(res.rtts), res.retrans, s)
					runs[m] = append(runs[m], res)
				}
			}
			l.reportShared(b, load, rate/capOf(vsPeriscope), runs)
		}
	}
}

// sharedRound times allowed round trips from the flooder pod while the
// flood comes at rate, and returns them and the flood's figures.
func (l *vsLab) sharedRound(b *testing.B, ctx context.Context, flood *xdpflood.Generator, napi []int, rate float64) (vsRTTResult, vsPacedStats) {
	b.Helper()
	var res vsRTTResult
	var offered xdpflood.Paced
	s := l.pacedRound(b, napi, func() {
		res = l.rttDuring(b, ctx, l.pacedFlood(flood, rate, &offered), vsRTTRun{
			from: l.flooder, cpu: vsPaced.rtt, nice: vsNAPIFair.nice, n: vsSharedRTTs, limit: vsSharedLimit,
		})
	})
	s.offered, s.behind = offered.Rate(), float64(offered.Behind)/offered.Elapsed.Seconds()
	return res, s
}

// reportShared logs and reports one load's figures; ofPeriscope is the
// rate as a share of Periscope's capacity.
func (l *vsLab) reportShared(b *testing.B, load, ofPeriscope float64, runs map[vsMode][]vsRTTResult) {
	b.Helper()
	p99 := func(m vsMode) []float64 {
		var out []float64
		for _, r := range runs[m] {
			out = append(out, r.p99())
		}
		return out
	}
	at := fmt.Sprintf("@%.2fx", load)
	var ratios []float64
	for i, p := range p99(vsPeriscope) {
		ratios = append(ratios, p/p99(vsIptables)[i])
	}
	slices.Sort(ratios)
	for _, m := range []vsMode{vsPeriscope, vsIptables} {
		b.ReportMetric(mean(p99(m))/1e3, "p99-µs-"+m.String()+at)
		b.ReportMetric(meanOf(runs[m], vsRTTResult.rate), "rtt/s-"+m.String()+at)
	}
	b.ReportMetric(ratios[len(ratios)/2], "p99-median-round-periscope/iptables"+at)
	b.Logf("%.2f× iptables' capacity (%.2f× Periscope's): p99 periscope %s µs, iptables %s µs; periscope/iptables %.3f, rounds %.3f",
		load, ofPeriscope, usRange(p99(vsPeriscope)), usRange(p99(vsIptables)),
		mean(p99(vsPeriscope))/mean(p99(vsIptables)), ratios)
}
