package datapath

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Figures and rounds of BenchmarkPolicyVsIptables (about a minute in all).
const (
	vsAllowed     = 1000            // allowed source /32s
	vsIperfRound  = 2 * time.Second // one iperf3 measurement
	vsFloodRound  = 3 * time.Second // one drop-rate measurement
	vsRounds      = 2               // turns of each mode, interleaved
	vsRTTs        = 2000            // request/response round trips per latency run
	vsSetName     = "psc-allowed"   // the ipset, in the server pod's netns
	vsEchoPort    = 7000
	vsFloodPort   = 9 // discard: nothing listens
	vsFloodBatch  = 64
	vsFloodLength = 18 // UDP payload bytes: a 64-byte frame
)

// vsMode is who enforces the server's ingress policy.
type vsMode int

const (
	vsNone vsMode = iota
	vsPeriscope
	vsIptables
)

func (m vsMode) String() string { return [...]string{"none", "periscope", "iptables"}[m] }

// vsLab is the three-pod topology: client (an allowed source), flooder (a
// denied one) and server (selected by the policy).
type vsLab struct {
	d                       *Datapath
	client, flooder, server *netlab.Pod
	mode                    vsMode
}

// BenchmarkPolicyVsIptables compares the same ingress policy on the server
// pod — 1,000 allowed source /32s (the client among them), everything else
// denied — enforced by Periscope (a CiliumNetworkPolicy with 1,000 fromCIDR
// entries, compiled and applied, the TC programs on the three host veths)
// and by iptables + ipset in the server pod's own netns (INPUT: accept
// `-m set --match-set psc-allowed src`, then DROP), with no policy as the
// third mode, in one run:
//
//   - throughput of allowed traffic (iperf3, client → server), every mode;
//   - drop rate of a UDP flood from the denied flooder pod (one sender,
//     sendmmsg batches of 64-byte frames, for a fixed time): packets
//     counted by the enforcer's own drop counter per second (Periscope: the
//     packet counts of flow entries with verdict DROPPED; iptables: the DROP
//     rule's counter);
//   - p99 latency of 2,000 TCP request/response round trips from the client
//     while the flooder floods (and, as the baseline, without a flood and
//     without a policy).
//
// Where the drop happens: the server's ingress policy is judged at TC
// egress of the server's host-side veth (after the bridge, before the veth
// pair and the server's IP stack); iptables sees the packet only in the
// server namespace's INPUT chain, after veth, IP receive and routing. The
// drop rate is bounded by the one sender's CPU, which also runs the
// receive path up to the drop (veth delivers in the sender's softirq):
// a cheaper drop lets the sender push more. Modes are interleaved.
//
// Run with: go test -run '^$' -bench BenchmarkPolicyVsIptables -benchtime 1x ./datapath/
func BenchmarkPolicyVsIptables(b *testing.B) {
	netlab.RequireRoot(b)
	for _, tool := range []string{"iptables", "ipset", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			netlab.SkipOrFail(b, tool+" not installed")
		}
	}
	lab, err := netlab.New(b.Context(), netlab.Options{Name: b.Name()})
	if err != nil {
		b.Fatalf("lab: %v", err)
	}
	b.Cleanup(func() {
		if err := lab.Close(); err != nil {
			b.Errorf("close lab: %v", err)
		}
	})
	l := &vsLab{}
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

	allowed := allowedSources(l.client.IPv4)
	c := l.compileCNP(b, allowed)
	applyOK(b, l.d, c)
	b.Cleanup(func() { _ = l.d.ApplyPolicy(nil) })
	l.createIpset(b, allowed)
	b.Cleanup(func() { l.setMode(b, vsNone) })

	echo := l.serveEcho(b)

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
		sent, dropped := map[vsMode][]float64{}, map[vsMode][]float64{}
		for range vsRounds {
			for _, m := range []vsMode{vsPeriscope, vsIptables} {
				l.setMode(b, m)
				s, dr := l.floodRound(b, ctx)
				b.Logf("flood %-9v sent %.0f pkt/s, dropped %.0f pkt/s", m, s, dr)
				sent[m] = append(sent[m], s)
				dropped[m] = append(dropped[m], dr)
			}
		}
		// (c) p99 latency of allowed requests, with and without a flood.
		p99 := map[string]float64{}
		l.setMode(b, vsNone)
		p99["none-noflood"] = l.rttP99(b, ctx, echo, false)
		for _, m := range []vsMode{vsPeriscope, vsIptables} {
			l.setMode(b, m)
			p99[m.String()+"-noflood"] = l.rttP99(b, ctx, echo, false)
			p99[m.String()+"-flood"] = l.rttP99(b, ctx, echo, true)
		}
		for k, v := range p99 {
			b.Logf("p99 %-18s %.0f µs", k, v/1e3)
		}

		for _, m := range []vsMode{vsNone, vsPeriscope, vsIptables} {
			b.ReportMetric(mean(tput[m])/1e9, "Gbit/s-"+m.String())
		}
		b.ReportMetric(mean(tput[vsPeriscope])/mean(tput[vsIptables]), "tput-periscope/iptables")
		b.ReportMetric(mean(tput[vsPeriscope])/mean(tput[vsNone]), "tput-periscope/none")
		for _, m := range []vsMode{vsPeriscope, vsIptables} {
			b.ReportMetric(mean(dropped[m]), "drop-pkt/s-"+m.String())
			b.ReportMetric(mean(sent[m]), "sent-pkt/s-"+m.String())
		}
		b.ReportMetric(mean(dropped[vsPeriscope])/mean(dropped[vsIptables]), "droprate-periscope/iptables")
		for k, v := range p99 {
			b.ReportMetric(v/1e3, "p99-µs-"+k)
		}
		b.ReportMetric(p99["periscope-flood"]/p99["iptables-flood"], "p99flood-periscope/iptables")
	}
}

// allowedSources is the client's address and 999 others outside the lab
// (198.19.0.0/16: never routed, only listed).
func allowedSources(client netip.Addr) []netip.Addr {
	out := []netip.Addr{client}
	for i := 1; len(out) < vsAllowed; i++ {
		out = append(out, netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}))
	}
	return out
}

// compileCNP parses the CiliumNetworkPolicy and compiles it for the server;
// the server is the only endpoint, so the client's address is a CIDR
// identity like the other 999.
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

// floodRound floods the server from the flooder for vsFloodRound and
// returns the packets per second sent and dropped by the enforcer.
func (l *vsLab) floodRound(b *testing.B, ctx context.Context) (sent, dropped float64) {
	b.Helper()
	before := l.droppedCount(b)
	fctx, cancel := context.WithTimeout(ctx, vsFloodRound)
	defer cancel()
	start := time.Now()
	n := l.flood(b, fctx)
	secs := time.Since(start).Seconds()
	time.Sleep(50 * time.Millisecond) // the sender's last batch is dropped by now
	var drops uint64
	for k, v := range l.droppedCount(b) {
		drops += v - before[k] // a new key starts from 0
	}
	return float64(n) / secs, float64(drops) / secs
}

// flood sends 64-byte UDP frames from the flooder to the server's discard
// port until ctx is done and returns how many the kernel took.
func (l *vsLab) flood(b *testing.B, ctx context.Context) uint64 {
	b.Helper()
	conn, err := l.flooder.DialUDP(ctx, netip.AddrPortFrom(l.server.IPv4, vsFloodPort))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	msgs := make([]ipv4.Message, vsFloodBatch)
	payload := make([]byte, vsFloodLength)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{payload}
	}
	var n uint64
	for ctx.Err() == nil {
		k, err := pc.WriteBatch(msgs, 0)
		if err != nil && !isTransient(err) {
			b.Errorf("flood: %v", err)
			return n
		}
		n += uint64(max(k, 0))
	}
	return n
}

// isTransient: a full queue or an ICMP error reported on the socket.
func isTransient(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no buffer space") || strings.Contains(s, "connection refused")
}

// serveEcho answers each line-sized request with itself, in the server pod.
func (l *vsLab) serveEcho(b *testing.B) netip.AddrPort {
	b.Helper()
	ln, err := l.server.ListenTCP(vsEchoPort)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	return netip.AddrPortFrom(l.server.IPv4, vsEchoPort)
}

// rttP99 measures vsRTTs round trips of 32 bytes from the client on one
// connection, with the flooder flooding when flood is set, and returns
// their 99th percentile in nanoseconds.
func (l *vsLab) rttP99(b *testing.B, ctx context.Context, echo netip.AddrPort, flood bool) float64 {
	b.Helper()
	fctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	if flood {
		wg.Go(func() { l.flood(b, fctx) })
		time.Sleep(200 * time.Millisecond) // the flood is under way
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	c, err := l.client.DialTCP(dctx, echo)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	req := bytes.Repeat([]byte{'x'}, 32)
	resp := make([]byte, len(req))
	rtts := make([]time.Duration, 0, vsRTTs)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	for range vsRTTs {
		start := time.Now()
		if _, err := c.Write(req); err != nil {
			b.Fatalf("request: %v", err)
		}
		if _, err := readFull(c, resp); err != nil {
			b.Fatalf("response: %v", err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	return float64(rtts[len(rtts)*99/100].Nanoseconds())
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
