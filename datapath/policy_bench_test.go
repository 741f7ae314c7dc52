package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// policyBenchSizes are the rule counts BenchmarkPolicyRules compares.
var policyBenchSizes = []int{10, 1000, 10000}

// policyBenchEP is the endpoint's own address (the judged peer is the other
// side, so it only has to be outside the peers' range).
const policyBenchEP = "198.19.255.1"

// ruleShape generates a policy of n rules for the endpoint and the judged
// packets of the i-th new connection: one it allows and one it denies.
type ruleShape struct {
	name   string
	policy func(n int) *policy.Policy
	allow  func(n, i int) []byte
	deny   func(n, i int) []byte
}

// peerAddr is the i-th allowed peer: 198.18.0.1 upwards.
func peerAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte((i + 1) >> 8), byte(i + 1)})
}

// sportOf gives connection i a source port of its own (a new flow entry)
// within 1024-65535.
func sportOf(i int) uint16 { return uint16(1024 + i%64000) }

// spread visits the n rules in a scattered order, so the lookups do not
// walk one branch of the tries.
func spread(n, i int) int { return (i * 7919) % n }

var ruleShapes = []ruleShape{
	{
		// n allowed /32 peers (one CIDR identity, ipcache entry and policy
		// entry each) on TCP 80: the ipcache hash and policy_fast (an
		// identity slot and a peer slot per peer) grow.
		name: "cidr-peers",
		policy: func(n int) *policy.Policy {
			peers := make([]policy.PeerSelector, n)
			for i := range peers {
				peers[i] = policy.PeerSelector{CIDR: netip.PrefixFrom(peerAddr(i), 32)}
			}
			return &policy.Policy{Name: fmt.Sprintf("allow-%d-peers", n), Kind: policy.KindCCNP, Rules: []policy.Rule{{
				Subject: *app("client"),
				Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{{Peers: peers, Ports: tcpPorts(80, 80)}}},
			}}}
		},
		allow: func(n, i int) []byte {
			return v4(peerAddr(spread(n, i)).String(), policyBenchEP, 6, tcpHeader(sportOf(i), 80, 0x02))
		},
		// A peer in no ipcache entry (world): ipcache miss, both policy
		// lookups miss, default deny.
		deny: func(n, i int) []byte {
			return v4("198.19.0.1", policyBenchEP, 6, tcpHeader(sportOf(i), 80, 0x02))
		},
	},
	{
		// n allowed single TCP ports (1000, 1002, ...: never merged into
		// a block) from any peer: policy_fast's identity-0 slots grow.
		name: "tcp-ports",
		policy: func(n int) *policy.Policy {
			ports := make([]policy.PortRange, n)
			for i := range ports {
				p := uint16(1000 + 2*i)
				ports[i] = policy.PortRange{Proto: api.ProtoTCP, Lo: p, Hi: p}
			}
			return &policy.Policy{Name: fmt.Sprintf("allow-%d-ports", n), Kind: policy.KindCCNP, Rules: []policy.Rule{{
				Subject: *app("client"),
				Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{{
					Peers: []policy.PeerSelector{{All: true}}, Ports: ports}}},
			}}}
		},
		allow: func(n, i int) []byte {
			return v4("198.18.0.1", policyBenchEP, 6, tcpHeader(sportOf(i), uint16(1000+2*spread(n, i)), 0x02))
		},
		deny: func(n, i int) []byte {
			return v4("198.18.0.1", policyBenchEP, 6, tcpHeader(sportOf(i), uint16(1001+2*spread(n, i)), 0x02))
		},
	},
}

// BenchmarkPolicyRules measures the cost of judging a new connection with
// 10, 1,000 and 10,000 rules, for n allowed /32 peers and for n allowed TCP
// ports, against a pass-through program and against the same new
// connections with no policy selecting the endpoint, all in the same run.
//
// How the judging path is measured: the programs judge a connection only
// when its flow entry is created (and once after a revision change), and
// PROG_TEST_RUN's repeat runs the same packet again, which after the first
// run is a packet of an existing flow: a repeat count would measure the
// flow-table hit path, not the policy (a denied SYN is no exception: the
// dropped connection keeps its entry). So every packet here is the SYN of a
// connection of its own (a new source port, against a scattered rule), run
// once (repeat 1): the kernel's own timer around the program (the duration
// PROG_TEST_RUN reports) measures it without the syscall. The ns/pkt figures
// are therefore the whole new-connection path (parse, flow-table miss and
// insert, judging, the START event), medians over every packet; the flow
// table is emptied and the ring buffer drained between batches (untimed),
// so every insert finds room and every event is written. The pass-through
// figure is the timer's own floor under the same conditions; "nopolicy" is
// an applied revision selecting no endpoint (one enforce-map lookup).
// Configurations are interleaved over rounds so the drift of a shared
// machine hits them all. Goal: allowed (and denied) ns/pkt flat within 20%
// from 10 to 10,000 rules (max/min ≤ 1.2).
//
// "allow" spreads the connections over every rule: with 10,000 rules each
// judged connection reads a rule no recent packet read (the worst case for
// the caches, which the per-packet syscall of PROG_TEST_RUN makes worse).
// "hot-allow" is the same traffic whatever the rule count (connections to
// the first 10 rules, which every size has): the cost of the policy's size
// alone.
//
// The second view, "est-" metrics, is the common case: a packet (an ACK) of
// a connection already judged under the same revision, run with a repeat
// count (estRepeat) so the kernel averages over the repeats; median over
// estConns connections per configuration, each of a scattered rule. It
// never consults the policy maps: est-allow and est-deny must be flat and
// close to est-nopolicy.
//
// Run with: go test -run '^$' -bench BenchmarkPolicyRules -benchtime 30000x ./datapath/
func BenchmarkPolicyRules(b *testing.B) {
	for _, shape := range ruleShapes {
		b.Run(shape.name, func(b *testing.B) { benchPolicyRules(b, shape) })
	}
}

// policyBenchRounds is how many times each configuration gets its turn.
const policyBenchRounds = 4

func benchPolicyRules(b *testing.B, shape ruleShape) {
	d := loadForTest(b, Config{ReportInterval: time.Hour, FlowTableSize: 1 << 16})
	base := passThrough(b)
	b.Cleanup(func() { _ = d.ApplyPolicy(nil) })

	compiled := make([]*compile.Compiled, len(policyBenchSizes))
	for j, n := range policyBenchSizes {
		start := time.Now()
		compiled[j] = compileTest(b, testEP, []*policy.Policy{shape.policy(n)})
		b.Logf("%s: %d rules compiled in %v to %d policy and %d ipcache entries",
			shape.name, n, time.Since(start).Round(time.Millisecond), len(compiled[j].Policy), len(compiled[j].IPCache))
	}

	perRound := max(b.N, 4000) / policyBenchRounds
	var passSamples, nopolSamples []time.Duration
	allowSamples := make([][]time.Duration, len(policyBenchSizes))
	denySamples := make([][]time.Duration, len(policyBenchSizes))
	hotSamples := make([][]time.Duration, len(policyBenchSizes))
	next := 0 // connection counter: every packet a new source port
	var estPass, estNopol []time.Duration
	estAllow := make([][]time.Duration, len(policyBenchSizes))
	estDeny := make([][]time.Duration, len(policyBenchSizes))
	b.ResetTimer()
	for range policyBenchRounds {
		passSamples = append(passSamples, measureNewFlows(b, d, base, perRound, &next, func(i int) []byte {
			return shape.allow(10, i)
		}, uint32(tcxNext))...)
		estPass = append(estPass, measureEstablished(b, d, base, &next, func(i int) []byte {
			return shape.allow(10, i)
		}, uint32(tcxNext))...)
		applyOK(b, d, nil)
		nopolSamples = append(nopolSamples, measureNewFlows(b, d, d.objs.FlowEgress, perRound, &next, func(i int) []byte {
			return shape.allow(10, i)
		}, uint32(tcxNext))...)
		estNopol = append(estNopol, measureEstablished(b, d, d.objs.FlowEgress, &next, func(i int) []byte {
			return shape.allow(10, i)
		}, uint32(tcxNext))...)
		for j, n := range policyBenchSizes {
			applyOK(b, d, compiled[j])
			allowSamples[j] = append(allowSamples[j], measureNewFlows(b, d, d.objs.FlowEgress, perRound, &next, func(i int) []byte {
				return shape.allow(n, i)
			}, uint32(tcxNext))...)
			denySamples[j] = append(denySamples[j], measureNewFlows(b, d, d.objs.FlowEgress, perRound, &next, func(i int) []byte {
				return shape.deny(n, i)
			}, tcxDrop)...)
			// The first 10 rules exist in every size: the same traffic.
			hotSamples[j] = append(hotSamples[j], measureNewFlows(b, d, d.objs.FlowEgress, perRound, &next, func(i int) []byte {
				return shape.allow(10, i)
			}, uint32(tcxNext))...)
			estAllow[j] = append(estAllow[j], measureEstablished(b, d, d.objs.FlowEgress, &next, func(i int) []byte {
				return shape.allow(n, i)
			}, uint32(tcxNext))...)
			estDeny[j] = append(estDeny[j], measureEstablished(b, d, d.objs.FlowEgress, &next, func(i int) []byte {
				return shape.deny(n, i)
			}, tcxDrop)...)
		}
	}
	b.StopTimer()

	b.ReportMetric(median(passSamples), "passthrough-ns/pkt")
	b.ReportMetric(median(nopolSamples), "nopolicy-ns/pkt")
	b.ReportMetric(median(estPass), "est-passthrough-ns/pkt")
	b.ReportMetric(median(estNopol), "est-nopolicy-ns/pkt")
	for _, kind := range []struct {
		name    string
		samples [][]time.Duration
	}{{"allow", allowSamples}, {"deny", denySamples}, {"hot-allow", hotSamples}, {"est-allow", estAllow}, {"est-deny", estDeny}} {
		lo, hi := 0.0, 0.0
		for j, n := range policyBenchSizes {
			m := median(kind.samples[j])
			b.ReportMetric(m, fmt.Sprintf("%s-%d-ns/pkt", kind.name, n))
			if j == 0 || m < lo {
				lo = m
			}
			hi = max(hi, m)
		}
		b.ReportMetric(hi/lo, kind.name+"-max/min")
		if kind.name == "allow" || kind.name == "deny" {
			b.ReportMetric(median(kind.samples[len(kind.samples)-1])-median(nopolSamples), kind.name+"-max-over-nopolicy-ns")
		}
	}
}

// estConns and estRepeat: the established view runs estConns connections
// per configuration and round, each packet estRepeat times.
const (
	estConns  = 16
	estRepeat = 2000
)

// measureEstablished opens estConns connections with gen's SYNs (judged,
// untimed), then runs an ACK of each estRepeat times through prog and
// returns the kernel's mean duration per run of each. The ACK must take
// the action want: the connection's verdict.
func measureEstablished(b *testing.B, d *Datapath, prog *ebpf.Program, next *int, gen func(i int) []byte, want uint32) []time.Duration {
	b.Helper()
	b.StopTimer()
	clearFlows(b, d)
	drainRing(b, d)
	acks := make([][]byte, estConns)
	for c := range acks {
		syn := gen(*next)
		*next++
		if _, err := runPacket(b, prog, syn); err != nil {
			b.Fatalf("run: %v", err)
		}
		acks[c] = withTCPFlags(syn, 0x10)
	}
	b.StartTimer()
	out := make([]time.Duration, 0, estConns)
	for _, ack := range acks {
		ret, dur, err := prog.Benchmark(ack, estRepeat, nil)
		if err != nil {
			b.Fatalf("run: %v", err)
		}
		if ret != want {
			b.Fatalf("action %#x, want %#x: the packet did not take the path measured", ret, want)
		}
		out = append(out, dur)
	}
	return out
}

// withTCPFlags returns a copy of an Ethernet + IPv4 (no options) + TCP
// frame with the TCP flags set to flags (checksums are not checked).
func withTCPFlags(pkt []byte, flags uint8) []byte {
	out := slices.Clone(pkt)
	out[14+20+13] = flags
	return out
}

// measureNewFlowsBatch is how many new flows run between two clean-ups of
// the flow table and the ring buffer (≈ 1 MiB of events in the 8 MiB ring).
const measureNewFlowsBatch = 4096

// measureNewFlows runs count packets of gen, each once and each a new
// connection, through prog and returns the kernel-timed duration of each.
// A packet whose action is not want fails the benchmark: the path measured
// must be the one intended.
func measureNewFlows(b *testing.B, d *Datapath, prog *ebpf.Program, count int, next *int, gen func(i int) []byte, want uint32) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, count)
	for done := 0; done < count; done += measureNewFlowsBatch {
		b.StopTimer()
		clearFlows(b, d)
		drainRing(b, d)
		b.StartTimer()
		for range min(measureNewFlowsBatch, count-done) {
			pkt := gen(*next)
			*next++
			ret, dur, err := prog.Benchmark(pkt, 1, nil)
			if err != nil {
				b.Fatalf("run: %v", err)
			}
			if ret != want {
				b.Fatalf("action %#x, want %#x: the packet did not take the path measured", ret, want)
			}
			out = append(out, dur)
		}
	}
	return out
}

// drainRing discards every event waiting in the ring buffer.
func drainRing(b *testing.B, d *Datapath) {
	b.Helper()
	for {
		d.reader.SetDeadline(time.Now().Add(time.Millisecond))
		if _, err := d.reader.Read(); err != nil {
			return // the deadline: empty
		}
	}
}

// median returns the median of xs in nanoseconds.
func median(xs []time.Duration) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return float64(s[len(s)/2].Nanoseconds())
}
