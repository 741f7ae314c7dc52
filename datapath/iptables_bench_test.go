package datapath

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Figures and rounds of BenchmarkPolicyVsIptables (about a minute in all).
const (
	vsAllowed        = 1000            // allowed source /32s
	vsIperfRound     = 2 * time.Second // one iperf3 measurement
	vsFloodRound     = 3 * time.Second // one drop-rate measurement
	vsRounds         = 2               // turns of each mode, interleaved
	vsRTTs           = 5000            // request/response round trips per latency run
	vsSetName        = "psc-allowed"   // the ipset, in the server pod's netns
	vsFloodPort      = 9               // discard: nothing listens
	vsFloodFirstPort = 10000           // the flood's source ports: from here,
	vsFloodPorts     = 4096            // this many flows, cycled frame by frame
)

// vsMode is who enforces the server's ingress policy.
type vsMode int

const (
	vsNone vsMode = iota
	vsPeriscope
	vsIptables
)

func (m vsMode) String() string { return [...]string{"none", "periscope", "iptables"}[m] }

// vsLab is the three-pod topology: client (an allowed source), flooder and
// server (selected by the policy). The flooder's own address is allowed
// too; its flood comes from floodSrc, a second address of its eth0 that is
// denied, so that allowed requests can share the flood's path
// (BenchmarkPolicyVsIptablesSharedIngress).
type vsLab struct {
	d                       *Datapath
	client, flooder, server *netlab.Pod
	floodSrc                netip.Addr
	mode                    vsMode
}

// BenchmarkPolicyVsIptables compares the same ingress policy on the server
// pod — 1,000 allowed source /32s (the client and the flooder's own address
// among them), everything else denied — enforced by Periscope (a CiliumNetworkPolicy with 1,000 fromCIDR
// entries, compiled and applied, the TC programs on the three host veths)
// and by iptables + ipset in the server pod's own netns (INPUT: accept
// `-m set --match-set psc-allowed src`, then DROP), with no policy as the
// third mode, in one run:
//
//   - throughput of allowed traffic (iperf3, client → server), every mode;
//   - drop rate of a UDP flood from the flooder pod's denied address: 64-byte frames
//     generated in the kernel (netlab/xdpflood: an XDP program run with
//     BPF_PROG_TEST_RUN in live-frame mode redirects them out of the
//     flooder's eth0) on a thread pinned to CPU 0, for a fixed time, with
//     4,096 source ports cycled: many flows, as a real flood has (Periscope
//     keeps an entry per flow, iptables here no state), but fewer than the
//     flow table holds, so no DROPPED entry and its count is evicted.
//     Dropped packets are counted by the enforcer's own counter (Periscope:
//     the packet counts of flow entries with verdict DROPPED; iptables: the
//     DROP rule's counter), per second and per second of CPU the flood used
//     (its thread, which runs the delivering softirqs, and ksoftirqd on its
//     CPU): on a shared machine the CPU the flood gets varies from round to
//     round, its cost per packet hardly. Frames generated and received by
//     the flooder's host veth are reported beside them;
//   - p99 latency of 5,000 TCP request/response round trips from the client
//     (blocking sockets, client and server threads pinned to one CPU)
//     without a flood, and during the flood with the round trips on the
//     other CPU (apart) or on the flood's (shared).
//
// Where the drop happens: the server's ingress policy is judged at TC
// egress of the server's host-side veth (after the bridge, before the veth
// pair and the server's IP stack); iptables sees the packet only in the
// server namespace's INPUT chain, after veth, IP receive and routing. The
// generator's loop delivers each batch in its own softirq (veth NAPI, TC,
// bridge, the server's veth backlog): the drop rate is one CPU's packets
// per second through the path up to the drop, and the generator itself
// costs little of it (no syscall, socket or IP output per packet), so a
// cheaper drop shows as a higher rate. Modes are interleaved.
//
// Run with: go test -run '^$' -bench BenchmarkPolicyVsIptables -benchtime 1x ./datapath/
func BenchmarkPolicyVsIptables(b *testing.B) {
	l, ctx := newVsLab(b)
	flood := l.newFlood(b, false)

	for b.Loop() {
		// (a) throughput of allowed traffic.
		tput := map[vsMode][]float64{}
		for range vsRounds {
			for _, m := range []vsMode{vsNone, vsPeriscope, vsIptables} {
				l.setMode(b, m)
				bps, err := netlab.Throughput(ctx, l.client, l.server, netlab.IperfOptions{Duration: vsIperfRound})
				if err != nil {
					b.Fatalf("iperf3 (%v): %v", m, err)
				}
				b.Logf("throughput %-9v %.2f Gbit/s", m, bps/1e9)
				tput[m] = append(tput[m], bps)
			}
		}
		// (b) drop rate of denied packets.
		rates := map[vsMode][]vsRates{}
		for range vsRounds {
			for _, m := range []vsMode{vsPeriscope, vsIptables} {
				l.setMode(b, m)
				r := l.floodRound(b, ctx, flood)
				b.Logf("flood %-9v generated %.0f pkt/s, delivered %.0f pkt/s, dropped %.0f pkt/s, %.0f pkt/cpu-s (%.0f%% of a CPU)",
					m, r.generated, r.delivered, r.dropped, r.droppedPerCPU, 100*r.cpuShare)
				rates[m] = append(rates[m], r)
			}
		}
		// (c) p99 latency of allowed requests, with and without a flood;
		// each figure the mean of vsRounds runs.
		p99s := map[string][]float64{}
		for range vsRounds {
			l.setMode(b, vsNone)
			p99s["none-noflood"] = append(p99s["none-noflood"], l.rttP99(b, ctx, nil, vsApart))
			for _, m := range []vsMode{vsPeriscope, vsIptables} {
				l.setMode(b, m)
				k := m.String() + "-noflood"
				p99s[k] = append(p99s[k], l.rttP99(b, ctx, nil, vsApart))
				for _, pl := range []vsPlacement{vsApart, vsShared} {
					k := m.String() + "-flood-" + pl.name
					p99s[k] = append(p99s[k], l.rttP99(b, ctx, flood, pl))
				}
			}
		}
		p99 := map[string]float64{}
		for k, v := range p99s {
			p99[k] = mean(v)
		}
		for _, k := range slices.Sorted(maps.Keys(p99)) {
			b.Logf("p99 %-24s %.0f µs", k, p99[k]/1e3)
		}

		for _, m := range []vsMode{vsNone, vsPeriscope, vsIptables} {
			b.ReportMetric(mean(tput[m])/1e9, "Gbit/s-"+m.String())
		}
		b.ReportMetric(mean(tput[vsPeriscope])/mean(tput[vsIptables]), "tput-periscope/iptables")
		b.ReportMetric(mean(tput[vsPeriscope])/mean(tput[vsNone]), "tput-periscope/none")
		for _, m := range []vsMode{vsPeriscope, vsIptables} {
			b.ReportMetric(meanOf(rates[m], func(r vsRates) float64 { return r.dropped }), "drop-pkt/s-"+m.String())
			b.ReportMetric(meanOf(rates[m], func(r vsRates) float64 { return r.delivered }), "delivered-pkt/s-"+m.String())
			b.ReportMetric(meanOf(rates[m], func(r vsRates) float64 { return r.generated }), "gen-pkt/s-"+m.String())
		}
		drop := func(m vsMode) float64 { return meanOf(rates[m], func(r vsRates) float64 { return r.dropped }) }
		perCPU := func(m vsMode) float64 { return meanOf(rates[m], func(r vsRates) float64 { return r.droppedPerCPU }) }
		for _, m := range []vsMode{vsPeriscope, vsIptables} {
			b.ReportMetric(perCPU(m), "drop-pkt/cpu-s-"+m.String())
		}
		b.ReportMetric(drop(vsPeriscope)/drop(vsIptables), "droprate-periscope/iptables")
		b.ReportMetric(perCPU(vsPeriscope)/perCPU(vsIptables), "droppercpu-periscope/iptables")
		for k, v := range p99 {
			b.ReportMetric(v/1e3, "p99-µs-"+k)
		}
		for _, pl := range []vsPlacement{vsApart, vsShared} {
			b.ReportMetric(p99["periscope-flood-"+pl.name]/p99["iptables-flood-"+pl.name], "p99flood-"+pl.name+"-periscope/iptables")
		}
	}
}

// newVsLab makes the three pods, loads the datapath, compiles and applies
// the policy and fills the ipset; the mode is none. Cleanup undoes it all.
func newVsLab(b *testing.B) (*vsLab, context.Context) {
	b.Helper()
	if runtime.NumCPU() < 2 {
		labtest.SkipOrFail(b, "needs 2 CPUs: one floods, the other answers")
	}
	labtest.RequireRoot(b)
	for _, tool := range []string{"iptables", "ipset", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			labtest.SkipOrFail(b, tool+" not installed")
		}
	}
	lab := labtest.NewLab(b)
	l := &vsLab{}
	var err error
	for _, p := range []struct {
		name string
		pod  **netlab.Pod
	}{{"server", &l.server}, {"client", &l.client}, {"flooder", &l.flooder}} {
		if *p.pod, err = lab.AddPod(netlab.PodSpec{Name: p.name, Namespace: "default", Labels: map[string]string{"app": p.name}}); err != nil {
			b.Fatal(err)
		}
	}
	l.d = loadForTest(b, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.d.Run(ctx, func(*api.Flow) {}); err != nil {
			b.Errorf("datapath Run: %v", err)
		}
	})
	b.Cleanup(func() { cancel(); wg.Wait() })

	// The flood's source: the lab subnet's .200, on the flooder's eth0.
	fs := l.flooder.IPv4.As4()
	fs[3] = 200
	l.floodSrc = netip.AddrFrom4(fs)
	if err := l.flooder.AddIPv4(l.floodSrc); err != nil {
		b.Fatal(err)
	}

	allowed := allowedSources(l.client.IPv4, l.flooder.IPv4)
	c := l.compileCNP(b, allowed)
	applyOK(b, l.d, c)
	b.Cleanup(func() { _ = l.d.ApplyPolicy(nil) })
	l.createIpset(b, allowed)
	b.Cleanup(func() { l.setMode(b, vsNone) })
	return l, ctx
}

// allowedSources is the pods' addresses and others outside the lab
// (198.19.0.0/16: never routed, only listed), vsAllowed in all.
func allowedSources(pods ...netip.Addr) []netip.Addr {
	out := slices.Clone(pods)
	for i := 1; len(out) < vsAllowed; i++ {
		out = append(out, netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}))
	}
	return out
}

// compileCNP parses the CiliumNetworkPolicy and compiles it for the server;
// the server is the only endpoint, so the pods' addresses are CIDR
// identities like the others.
func (l *vsLab) compileCNP(b *testing.B, allowed []netip.Addr) *compile.Compiled {
	b.Helper()
	var y strings.Builder
	y.WriteString("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: allow-1000, namespace: default}\n")
	y.WriteString("spec:\n  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromCIDR:\n")
	for _, a := range allowed {
		fmt.Fprintf(&y, "    - %s/32\n", a)
	}
	pols, err := policy.Parse("allow-1000.yaml", []byte(y.String()))
	if err != nil {
		b.Fatalf("parse policy: %v", err)
	}
	ep := uint32(l.server.HostVeth.Index)
	c, err := compile.Compile(compile.Input{
		Policies: pols,
		Endpoints: []compile.Endpoint{{ID: ep, Identity: 1500, Namespace: "default",
			Labels: []string{"k8s:app=server"}, IPs: []netip.Addr{l.server.IPv4}}},
	})
	if err != nil {
		b.Fatalf("compile: %v", err)
	}
	if !c.Enforce[ep].Ingress {
		b.Fatal("the policy does not make the server's ingress default deny")
	}
	return c
}

// run runs a command in the server pod.
func (l *vsLab) run(b *testing.B, stdin string, name string, args ...string) string {
	b.Helper()
	cmd := l.server.Command(context.Background(), name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), l.server.NetNSName, err, out)
	}
	return string(out)
}

// createIpset fills the set in the server's netns; destroyed by Cleanup
// (after the rules that use it).
func (l *vsLab) createIpset(b *testing.B, allowed []netip.Addr) {
	b.Helper()
	var in strings.Builder
	fmt.Fprintf(&in, "create %s hash:ip family inet maxelem %d\n", vsSetName, 2*vsAllowed)
	for _, a := range allowed {
		fmt.Fprintf(&in, "add %s %s\n", vsSetName, a)
	}
	l.run(b, in.String(), "ipset", "restore")
	b.Cleanup(func() {
		if out, err := l.server.Command(context.Background(), "ipset", "destroy", vsSetName).CombinedOutput(); err != nil {
			b.Errorf("ipset destroy: %v: %s", err, out)
		}
	})
}

var vsRules = [][]string{
	{"INPUT", "-m", "set", "--match-set", vsSetName, "src", "-j", "ACCEPT"},
	{"INPUT", "-j", "DROP"},
}

// setMode switches enforcement: Periscope's programs on the three host
// veths, or the iptables rules in the server's INPUT chain, or neither.
func (l *vsLab) setMode(b *testing.B, m vsMode) {
	b.Helper()
	if m == l.mode {
		return
	}
	veths := []string{l.server.HostVeth.Name, l.client.HostVeth.Name, l.flooder.HostVeth.Name}
	switch l.mode {
	case vsPeriscope:
		for _, v := range veths {
			if err := l.d.DetachInterface(v); err != nil {
				b.Fatal(err)
			}
		}
	case vsIptables:
		for _, r := range vsRules {
			l.run(b, "", "iptables", append([]string{"-w", "-D"}, r...)...)
		}
	}
	l.mode = vsNone
	switch m {
	case vsPeriscope:
		for _, v := range veths {
			if err := l.d.AttachInterface(v); err != nil {
				b.Fatal(err)
			}
		}
	case vsIptables:
		for _, r := range vsRules {
			l.run(b, "", "iptables", append([]string{"-w", "-A"}, r...)...)
		}
	}
	l.mode = m
}

// droppedCount is the enforcer's drop counter in the current mode.
func (l *vsLab) droppedCount(b *testing.B) map[tcFlowFlowKey]uint64 {
	b.Helper()
	out := map[tcFlowFlowKey]uint64{}
	switch l.mode {
	case vsPeriscope:
		var k tcFlowFlowKey
		var v tcFlowFlowValue
		it := l.d.objs.Flows.Iterate()
		for it.Next(&k, &v) {
			if v.Verdict == uint8(tcFlowFlowVerdictFLOW_VERDICT_DROPPED) {
				out[k] = v.Packets[0] + v.Packets[1]
			}
		}
		if err := it.Err(); err != nil {
			b.Fatalf("iterate flows: %v", err)
		}
	case vsIptables:
		sc := bufio.NewScanner(strings.NewReader(l.run(b, "", "iptables", "-w", "-L", "INPUT", "-v", "-x", "-n")))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 2 && f[2] == "DROP" {
				n, err := strconv.ParseUint(f[0], 10, 64)
				if err != nil {
					b.Fatalf("iptables counter %q: %v", f[0], err)
				}
				out[tcFlowFlowKey{}] = n
			}
		}
	}
	return out
}

func meanOf[T any](xs []T, f func(T) float64) float64 {
	var s float64
	for _, x := range xs {
		s += f(x)
	}
	return s / float64(len(xs))
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
