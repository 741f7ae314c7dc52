package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// PROG_TEST_RUN runs a TC program on the loopback device: the endpoint is
// ifindex 1. At its TC ingress the packets leave the "pod" (its egress).
const testEP = 1

const tcxDrop = 2 // TCX_DROP, TC_ACT_SHOT

func app(v string) *policy.Selector {
	return &policy.Selector{Reqs: []policy.Requirement{{Source: "k8s", Key: "app", Op: policy.OpIn, Values: []string{v}}}}
}

func tcpPorts(lo, hi uint16) []policy.PortRange {
	return []policy.PortRange{{Proto: api.ProtoTCP, Lo: lo, Hi: hi}}
}

// testPolicies: the client may reach web on TCP 80, 192.168.0.0/16 on TCP
// 8000-8003 and bad on TCP 80, but bad is denied outright; anyone may reach
// the client on UDP 53. Both directions are default deny.
func testPolicies(egressPorts ...uint16) []*policy.Policy {
	allow := []policy.PeerRule{
		{Peers: []policy.PeerSelector{{CIDR: netip.MustParsePrefix("192.168.0.0/16")}}, Ports: tcpPorts(8000, 8003)},
		{Peers: []policy.PeerSelector{{Selector: app("bad")}}, Ports: tcpPorts(80, 80)},
		{Peers: []policy.PeerSelector{{Selector: app("web")}}, Ports: []policy.PortRange{
			{Proto: api.ProtoICMPv4, Lo: 8, Hi: 8}, {Proto: api.ProtoICMPv6, Lo: 128, Hi: 128}}},
	}
	for _, p := range egressPorts {
		allow = append(allow, policy.PeerRule{Peers: []policy.PeerSelector{{Selector: app("web")}}, Ports: tcpPorts(p, p)})
	}
	return []*policy.Policy{
		{Name: "allow-out", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
			Egress: policy.DirectionRules{DefaultDeny: true, Allow: allow}}}},
		{Name: "deny-bad", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
			Egress: policy.DirectionRules{Deny: []policy.PeerRule{{Peers: []policy.PeerSelector{{Selector: app("bad")}}}}}}}},
		{Name: "allow-dns-in", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
			Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{{Peers: []policy.PeerSelector{{All: true}},
				Ports: []policy.PortRange{{Proto: api.ProtoUDP, Lo: 53, Hi: 53}}}}}}}},
	}
}

func compileTest(t testing.TB, ep uint32, pols []*policy.Policy) *compile.Compiled {
	t.Helper()
	c, err := compile.Compile(compile.Input{
		Policies: pols,
		Endpoints: []compile.Endpoint{{ID: ep, Identity: 1500, Labels: []string{"k8s:app=client"},
			IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}},
		Identities: []identity.Identity{
			{ID: 2001, Labels: identity.NewLabels("k8s:app=web")},
			{ID: 3000, Labels: identity.NewLabels("k8s:app=bad")},
		},
		IPCache: []compile.IPEntry{
			{Prefix: netip.MustParsePrefix("10.1.2.3/32"), Identity: 2001},
			{Prefix: netip.MustParsePrefix("10.9.9.9/32"), Identity: 3000},
			{Prefix: netip.MustParsePrefix("fd00:1::/64"), Identity: 2001},
		},
	})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c
}

func applyOK(t testing.TB, d *Datapath, c *compile.Compiled) {
	t.Helper()
	if err := d.ApplyPolicy(c); err != nil {
		t.Fatalf("apply policy: %v", err)
	}
}

// policyCase is one connection's first packet and what must become of it.
type policyCase struct {
	name    string
	ingress bool // run at TC egress (to the pod): the pod's ingress
	src     string
	dst     string
	proto   uint8
	sport   uint16
	dport   uint16
	verdict api.Verdict
	reason  api.DropReason
	names   []string // deciding policies in the flow's direction
}

func (pc policyCase) packet() []byte {
	ip := v4
	if netip.MustParseAddr(pc.src).Is6() {
		ip = v6
	}
	switch pc.proto {
	case api.ProtoUDP:
		return ip(pc.src, pc.dst, 17, udpHeader(pc.sport, pc.dport, 10))
	case api.ProtoICMPv4, api.ProtoICMPv6:
		return ip(pc.src, pc.dst, pc.proto, icmpEcho(uint8(pc.dport), pc.sport))
	}
	return ip(pc.src, pc.dst, 6, tcpHeader(pc.sport, pc.dport, 0x02))
}

func (pc policyCase) run(t *testing.T, d *Datapath) uint32 {
	t.Helper()
	prog := d.objs.FlowIngress
	if pc.ingress {
		prog = d.objs.FlowEgress
	}
	ret, err := runPacket(t, prog, pc.packet())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret
}

var policyCases = []policyCase{
	{name: "an allowed egress connection is forwarded and names its policy",
		src: "10.0.0.1", dst: "10.1.2.3", sport: 40000, dport: 80, verdict: api.VerdictForwarded, names: []string{"allow-out"}},
	{name: "an egress connection no rule allows is dropped with POLICY_DENIED",
		src: "10.0.0.1", dst: "10.1.2.3", sport: 40001, dport: 81, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
	{name: "an explicit deny wins over an allow with POLICY_DENY",
		src: "10.0.0.1", dst: "10.9.9.9", sport: 40002, dport: 80, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDeny, names: []string{"deny-bad"}},
	{name: "a peer in an allowed CIDR inside the port range is forwarded",
		src: "10.0.0.1", dst: "192.168.5.5", sport: 40003, dport: 8002, verdict: api.VerdictForwarded, names: []string{"allow-out"}},
	{name: "the last port of the range is allowed",
		src: "10.0.0.1", dst: "192.168.5.5", sport: 40004, dport: 8003, verdict: api.VerdictForwarded, names: []string{"allow-out"}},
	{name: "the port after the range is dropped",
		src: "10.0.0.1", dst: "192.168.5.5", sport: 40005, dport: 8004, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
	{name: "the port before the range is dropped",
		src: "10.0.0.1", dst: "192.168.5.5", sport: 40006, dport: 7999, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
	{name: "an address in no ipcache entry is world and dropped",
		src: "10.0.0.1", dst: "8.8.8.8", sport: 40007, dport: 80, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
	{name: "an IPv6 peer in an ipcache prefix has its identity",
		src: "fd00::1", dst: "fd00:1::5", sport: 40008, dport: 80, verdict: api.VerdictForwarded, names: []string{"allow-out"}},
	{name: "an IPv6 peer outside every prefix is world and dropped",
		src: "fd00::1", dst: "fd00:2::5", sport: 40009, dport: 80, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
	{name: "an allowed ICMP echo type is forwarded", proto: api.ProtoICMPv4,
		src: "10.0.0.1", dst: "10.1.2.3", sport: 77, dport: 8, verdict: api.VerdictForwarded, names: []string{"allow-out"}},
	{name: "an allowed ICMPv6 echo type is forwarded", proto: api.ProtoICMPv6,
		src: "fd00::1", dst: "fd00:1::5", sport: 78, dport: 128, verdict: api.VerdictForwarded, names: []string{"allow-out"}},
	{name: "ICMP echo to a peer without an ICMP rule is dropped", proto: api.ProtoICMPv4,
		src: "10.0.0.1", dst: "192.168.5.5", sport: 79, dport: 8, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
	{name: "an allowed ingress connection is forwarded", ingress: true, proto: api.ProtoUDP,
		src: "8.8.8.8", dst: "10.0.0.1", sport: 5000, dport: 53, verdict: api.VerdictForwarded, names: []string{"allow-dns-in"}},
	{name: "an ingress connection no rule allows is dropped", ingress: true, proto: api.ProtoUDP,
		src: "8.8.8.8", dst: "10.0.0.1", sport: 5000, dport: 54, verdict: api.VerdictDropped, reason: api.DropReasonPolicyDenied},
}

// flowNames returns the names in the flow's policy fields, and whether they
// sit in the field its direction and verdict call for.
func flowNames(f *api.Flow, ingress bool) ([]string, bool) {
	deny := f.DropReason == api.DropReasonPolicyDeny
	fields := map[*[]api.PolicyRef]bool{&f.IngressAllowedBy: ingress && !deny, &f.IngressDeniedBy: ingress && deny,
		&f.EgressAllowedBy: !ingress && !deny, &f.EgressDeniedBy: !ingress && deny}
	var names []string
	ok := true
	for p, want := range fields {
		if len(*p) > 0 {
			names = refNames(*p)
			ok = ok && want
		}
	}
	return names, ok
}

// refNames are the policies' refs ("namespace/name").
func refNames(refs []api.PolicyRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Ref())
	}
	return out
}

func TestPolicyJudgesNewConnections(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	c := compileTest(t, testEP, testPolicies(80))
	applyOK(t, d, c)
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	for _, tc := range policyCases {
		t.Run(tc.name, func(t *testing.T) {
			clearFlows(t, d)
			drain(t, d)
			// The kernel must agree with the compiler's own lookup.
			remote, dir, port := tc.dst, policy.Egress, tc.dport
			if tc.ingress {
				remote, dir = tc.src, policy.Ingress
			}
			proto := tc.proto
			if proto == 0 {
				proto = api.ProtoTCP
			}
			dec := c.Decide(testEP, c.IdentityOf(netip.MustParseAddr(remote)), dir, proto, port)
			if (dec.Verdict == policy.Allowed) != (tc.verdict == api.VerdictForwarded) {
				t.Fatalf("compile.Decide says %v, the case %v", dec.Verdict, tc.verdict)
			}

			want := uint32(tcxNext)
			if tc.verdict == api.VerdictDropped {
				want = tcxDrop
			}
			for i := range 2 {
				if ret := tc.run(t, d); ret != want {
					t.Fatalf("packet %d: action %#x, want %#x", i, ret, want)
				}
			}
			flows := drain(t, d)
			if len(flows) != 1 {
				t.Fatalf("%d events, want one START for both packets", len(flows))
			}
			f := flows[0]
			if f.Verdict != tc.verdict || f.DropReason != tc.reason {
				t.Errorf("verdict %v reason %d, want %v %d", f.Verdict, f.DropReason, tc.verdict, tc.reason)
			}
			names, ok := flowNames(&f, tc.ingress)
			if !ok || !slices.Equal(names, tc.names) {
				t.Errorf("names %v (in the right field: %v), want %v", names, ok, tc.names)
			}
			if n := tableCounters(t, d); n.PacketsForward != 2 {
				t.Errorf("table counts %d packets, want both (dropped ones too)", n.PacketsForward)
			}
		})
	}
}

func TestPolicyPassesRepliesOfAnAllowedConnection(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	applyOK(t, d, compileTest(t, testEP, testPolicies(80)))
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	syn := v4("10.0.0.1", "10.1.2.3", 6, tcpHeader(40000, 80, 0x02))
	synack := v4("10.1.2.3", "10.0.0.1", 6, tcpHeader(80, 40000, 0x12))
	ack := v4("10.1.2.3", "10.0.0.1", 6, tcpHeader(80, 40000, 0x10))
	if ret, _ := runPacket(t, d.objs.FlowIngress, syn); ret != tcxNext {
		t.Fatalf("SYN: %#x", ret)
	}
	// The pod's ingress is default deny and allows only UDP 53.
	for _, p := range [][]byte{synack, ack} {
		if ret, _ := runPacket(t, d.objs.FlowEgress, p); ret != tcxNext {
			t.Fatalf("reply: action %#x, want TCX_NEXT", ret)
		}
	}
	// The same packet opening a connection of its own is dropped.
	clearFlows(t, d)
	if ret, _ := runPacket(t, d.objs.FlowEgress, v4("10.1.2.3", "10.0.0.1", 6, tcpHeader(80, 40000, 0x02))); ret != tcxDrop {
		t.Fatalf("unsolicited SYN to the pod: action %#x, want drop", ret)
	}
}

func TestPolicyAuditReportsWithoutDropping(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	if err := d.SetPolicyAudit(testEP, true); err != nil {
		t.Fatal(err)
	}
	applyOK(t, d, compileTest(t, testEP, testPolicies(80)))
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	for _, tc := range policyCases {
		clearFlows(t, d)
		drain(t, d)
		if ret := tc.run(t, d); ret != tcxNext {
			t.Fatalf("%s: action %#x in audit mode", tc.name, ret)
		}
		flows := drain(t, d)
		if len(flows) != 1 {
			t.Fatalf("%s: %d events", tc.name, len(flows))
		}
		want := tc.verdict
		if want == api.VerdictDropped {
			want = api.VerdictAudit
		}
		if f := flows[0]; f.Verdict != want || f.DropReason != tc.reason {
			t.Errorf("%s: verdict %v reason %d, want %v %d", tc.name, f.Verdict, f.DropReason, want, tc.reason)
		}
	}
	// Leaving audit mode re-judges the existing connection at once.
	clearFlows(t, d)
	drain(t, d)
	deny := policyCases[1]
	deny.run(t, d)
	if err := d.SetPolicyAudit(testEP, false); err != nil {
		t.Fatal(err)
	}
	if ret := deny.run(t, d); ret != tcxDrop {
		t.Fatalf("after audit off: action %#x, want drop", ret)
	}
	flows := drain(t, d)
	if len(flows) != 2 || flows[1].Event != api.EventState || flows[1].Verdict != api.VerdictDropped {
		t.Fatalf("events %+v, want START (AUDIT) then STATE (DROPPED)", flows)
	}
}

func TestPolicyWithoutSelectionOrPolicyForwards(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	pkt := policyCases[1].packet()
	if ret, _ := runPacket(t, d.objs.FlowIngress, pkt); ret != tcxNext || d.PolicyRevision() != 0 {
		t.Fatalf("no policy: action %#x revision %d", ret, d.PolicyRevision())
	}
	// Policy for another endpoint: this one is not selected.
	applyOK(t, d, compileTest(t, 4242, testPolicies(80)))
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	clearFlows(t, d)
	if ret, _ := runPacket(t, d.objs.FlowIngress, pkt); ret != tcxNext {
		t.Fatalf("unselected endpoint: action %#x", ret)
	}
	// A policy change applies to the existing connection at once.
	applyOK(t, d, compileTest(t, testEP, testPolicies(80)))
	if ret, _ := runPacket(t, d.objs.FlowIngress, pkt); ret != tcxDrop {
		t.Fatalf("existing connection after the change: action %#x, want drop", ret)
	}
	applyOK(t, d, nil)
	if ret, _ := runPacket(t, d.objs.FlowIngress, pkt); ret != tcxNext {
		t.Fatalf("after removing the policy: action %#x", ret)
	}
}

// TestPolicyRevisionFlipIsAtomic flips between two policies while packets
// run: every event's verdict must be the one its revision gives, and port
// 443 (allowed by both) is never dropped.
func TestPolicyRevisionFlipIsAtomic(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour, RingBufferSize: 32 << 20})
	// Revision r is pols[(r-1)%2]: 1 is pols[0], the flipper goes on from 2.
	pols := [2]*compile.Compiled{compileTest(t, testEP, testPolicies(80, 443)), compileTest(t, testEP, testPolicies(81, 443))}
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	applyOK(t, d, pols[0])
	if d.PolicyRevision() != 1 {
		t.Fatalf("revision %d after the first apply", d.PolicyRevision())
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer func() { stop.Store(true); wg.Wait() }() // before Cleanup closes d, even on Fatal
	flips := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; !stop.Load(); i++ {
			if err := d.ApplyPolicy(pols[i%2]); err != nil {
				t.Errorf("apply: %v", err)
				return
			}
			flips++
		}
	}()
	deadline := time.Now().Add(time.Second)
	sport := uint16(1024)
	packets := 0
	// Every tuple new: stop before the source ports wrap.
	for time.Now().Before(deadline) && sport < 65000 {
		for _, port := range []uint16{80, 81, 443} {
			sport++
			ret, err := runPacket(t, d.objs.FlowIngress, v4("10.0.0.1", "10.1.2.3", 6, tcpHeader(sport, port, 0x02)))
			if err != nil {
				t.Fatal(err)
			}
			if port == 443 && ret != tcxNext {
				t.Fatalf("port 443, allowed by both revisions, got action %#x", ret)
			}
			packets++
		}
		// An existing connection, re-judged by every revision.
		if _, err := runPacket(t, d.objs.FlowIngress, v4("10.0.0.1", "10.1.2.3", 6, tcpHeader(999, 80, 0x10))); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if flips < 5 {
		t.Fatalf("only %d flips", flips)
	}
	evs := drainRaw(t, d)
	for _, ev := range evs {
		if ev.Revision == 0 {
			t.Fatalf("event without revision: %+v", ev)
		}
		c := pols[(ev.Revision-1)%2]
		dec := c.Decide(testEP, 2001, policy.Egress, api.ProtoTCP, ev.Dport)
		want, reason := uint8(tcFlowFlowVerdictFLOW_VERDICT_DROPPED), uint16(api.DropReasonPolicyDenied)
		if dec.Verdict == policy.Allowed {
			want, reason = uint8(tcFlowFlowVerdictFLOW_VERDICT_FORWARDED), 0
		}
		if ev.Verdict != want || ev.DropReason != reason {
			t.Fatalf("port %d at revision %d: verdict %d reason %d, the revision gives %d %d",
				ev.Dport, ev.Revision, ev.Verdict, ev.DropReason, want, reason)
		}
	}
	if s := d.Stats(); s.EventsLost != 0 {
		t.Fatalf("%d events lost: the check is incomplete", s.EventsLost)
	}
	t.Logf("%d flips, %d new connections, %d events checked", flips, packets, len(evs))
}

// drainRaw reads every event waiting in the ring, undecoded.
func drainRaw(t testing.TB, d *Datapath) []flowEvent {
	t.Helper()
	var out []flowEvent
	readRing(t, d, func(sample []byte) {
		var ev flowEvent
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&ev)), EventSize), sample)
		out = append(out, ev)
	})
	return out
}

// TestPolicyIsAdoptedByTheNextLoad: a closed (or crashed) collector leaves
// its policy pinned, and the next Load judges with it before any
// ApplyPolicy.
func TestPolicyIsAdoptedByTheNextLoad(t *testing.T) {
	pin := netlab.PinPath(t, "test-adopt")
	load := func() *Datapath {
		t.Helper()
		d, err := Load(Config{PinPath: pin, Logger: quietLogger, ReportInterval: time.Hour})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return d
	}
	allow, deny := policyCases[0].packet(), policyCases[1].packet()
	check := func(d *Datapath, what string) {
		t.Helper()
		if ret, _ := runPacket(t, d.objs.FlowIngress, allow); ret != tcxNext {
			t.Fatalf("%s: allowed connection got %#x", what, ret)
		}
		if ret, _ := runPacket(t, d.objs.FlowIngress, deny); ret != tcxDrop {
			t.Fatalf("%s: denied connection got %#x", what, ret)
		}
	}
	d1 := load()
	applyOK(t, d1, compileTest(t, testEP, testPolicies(80)))
	check(d1, "first run")
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range policyPins {
		if _, err := os.Stat(filepath.Join(pin, name)); err != nil {
			t.Fatalf("policy pin %s gone after Close: %v", name, err)
		}
	}

	d2 := load()
	if d2.PolicyRevision() != 1 {
		t.Fatalf("adopted revision %d, want 1", d2.PolicyRevision())
	}
	check(d2, "after Close and Load")
	crash(t, d2)

	d3 := load()
	check(d3, "after a crash and Load")
	// A new policy continues the revisions; removing it leaves no pins.
	applyOK(t, d3, nil)
	if d3.PolicyRevision() != 2 {
		t.Fatalf("revision %d after the next apply, want 2", d3.PolicyRevision())
	}
	if ret, _ := runPacket(t, d3.objs.FlowIngress, deny); ret != tcxNext {
		t.Fatalf("after removing the policy: %#x", ret)
	}
	if err := d3.Close(); err != nil {
		t.Fatal(err)
	}
	// d3 adopted PinPath's state, so it removes PinPath too.
	if ents, err := os.ReadDir(pin); !errors.Is(err, os.ErrNotExist) && (err != nil || len(ents) != 0) {
		t.Fatalf("pins left after Close without policy: %v %v", ents, err)
	}
}

// TestPolicyDropsOnAVeth enforces an ingress policy on a real pod's veth and
// reads the verdicts through Run, as the collector does.
func TestPolicyDropsOnAVeth(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour, IdleTimeout: time.Hour})
	l := newVethLab(t)
	if err := d.AttachInterface(l.host); err != nil {
		t.Fatal(err)
	}
	applyOK(t, d, podPolicy(t, l, webTo8080("web-in")))
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })

	rec := recordFlows(t, d, nil)
	l.serveTCP(t, closeConn, 8080, 8081)
	if err := l.connectTCP(8080); err != nil {
		t.Fatalf("allowed connection: %v", err)
	}
	if err := l.connectTCP(8081); err == nil {
		t.Fatalf("denied connection was established")
	}
	time.Sleep(100 * time.Millisecond)
	flows := rec.Stop(t)
	var sawAllow, sawDrop bool
	for _, f := range flows {
		if f.Event != api.EventStart || f.L4.Protocol != api.ProtoTCP {
			continue
		}
		switch f.L4.DestinationPort {
		case 8080:
			sawAllow = f.Verdict == api.VerdictForwarded && slices.Equal(refNames(f.IngressAllowedBy), []string{"web-in"})
		case 8081:
			sawDrop = f.Verdict == api.VerdictDropped && f.DropReason == api.DropReasonPolicyDenied
		}
	}
	if !sawAllow || !sawDrop {
		t.Fatalf("allowed flow seen %v, dropped flow seen %v in %d flows", sawAllow, sawDrop, len(flows))
	}
}

// BenchmarkTCProgramWithPolicy is BenchmarkTCProgram with a policy that
// selects the endpoint and allows the connection: the per-packet cost of
// an existing connection under policy.
func BenchmarkTCProgramWithPolicy(b *testing.B) {
	d := loadForTest(b, Config{ReportInterval: time.Hour})
	c, err := compile.Compile(compile.Input{
		Policies:   testPolicies(80),
		Endpoints:  []compile.Endpoint{{ID: testEP, Identity: 1500, Labels: []string{"k8s:app=client"}}},
		Identities: []identity.Identity{{ID: 2001, Labels: identity.NewLabels("k8s:app=web")}},
		IPCache:    []compile.IPEntry{{Prefix: netip.MustParsePrefix("198.18.0.1/32"), Identity: 2001}},
	})
	if err != nil {
		b.Fatal(err)
	}
	applyOK(b, d, c)
	b.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	benchTC(b, d)
	ack := v4("198.18.0.2", "198.18.0.1", 6, tcpHeader(40000, 80, 0x10))
	if ret, _ := runPacket(b, d.objs.FlowIngress, ack); ret != tcxNext || d.PolicyRevision() == 0 {
		b.Fatalf("the benchmarked connection is not allowed under policy: action %#x", ret)
	}
}

func TestDecodeFillsPolicyFields(t *testing.T) {
	var names atomic.Pointer[nameTables]
	names.Store(&nameTables{
		cur: revisionNames{rev: 7, sets: [][]api.PolicyRef{nil, {{Name: "a", Namespace: "ns", Kind: "CiliumNetworkPolicy", Revision: 7}},
			{{Name: "deny", Namespace: "ns", Kind: "NetworkPolicy", Revision: 5}}}},
		prev: revisionNames{rev: 6, sets: [][]api.PolicyRef{nil, {{Name: "old", Namespace: "ns"}}}, hosts: map[uint32]bool{8: true}},
	})
	dec := NewDecoder(FixedClock(boot), 1)
	dec.names = &names
	tests := []struct {
		name    string
		hook    uint8
		verdict uint8
		reason  uint16
		set     uint32
		rev     uint64
		want    api.Flow // only the policy fields
		wantErr bool
		ifindex uint32 // 7 when 0
	}{
		{name: "no policy decodes as forwarded", want: api.Flow{Verdict: api.VerdictForwarded}},
		{name: "an allow at TC ingress names the egress allow", hook: 1, verdict: 1, set: 1, rev: 7,
			want: api.Flow{Verdict: api.VerdictForwarded, EgressAllowedBy: []api.PolicyRef{{Name: "a", Namespace: "ns", Kind: "CiliumNetworkPolicy", Revision: 7}}}},
		{name: "a deny at TC egress names the ingress deny", hook: 2, verdict: 2, reason: 181, set: 2, rev: 7,
			want: api.Flow{Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDeny, IngressDeniedBy: []api.PolicyRef{{Name: "deny", Namespace: "ns", Kind: "NetworkPolicy", Revision: 5}}}},
		{name: "the previous revision's names are kept", hook: 2, verdict: 1, set: 1, rev: 6,
			want: api.Flow{Verdict: api.VerdictForwarded, IngressAllowedBy: []api.PolicyRef{{Name: "old", Namespace: "ns"}}}},
		{name: "an allow at a host device's TC ingress names the host's ingress allow", ifindex: 8, hook: 1, verdict: 1, set: 1, rev: 6,
			want: api.Flow{Verdict: api.VerdictForwarded, IngressAllowedBy: []api.PolicyRef{{Name: "old", Namespace: "ns"}}}},
		{name: "an older revision has no names", hook: 2, verdict: 4, reason: 133, set: 1, rev: 5,
			want: api.Flow{Verdict: api.VerdictAudit, DropReason: api.DropReasonPolicyDenied}},
		{name: "a set beyond the table has no names", hook: 1, verdict: 1, set: 9, rev: 7,
			want: api.Flow{Verdict: api.VerdictForwarded}},
		{name: "an unknown verdict is malformed", hook: 1, verdict: 3, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := v4Event(1, 1)
			ev.Hook, ev.Verdict, ev.DropReason, ev.PolicySet, ev.Revision = tt.hook, tt.verdict, tt.reason, tt.set, tt.rev
			if tt.ifindex != 0 {
				ev.Ifindex = tt.ifindex
			}
			var f api.Flow
			err := dec.Decode(eventBytes(ev), &f)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := api.Flow{Verdict: f.Verdict, DropReason: f.DropReason, IngressAllowedBy: f.IngressAllowedBy,
				IngressDeniedBy: f.IngressDeniedBy, EgressAllowedBy: f.EgressAllowedBy, EgressDeniedBy: f.EgressDeniedBy}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	ev := v4Event(1, 1)
	ev.Verdict, ev.PolicySet, ev.Revision = 1, 1, 7
	raw := eventBytes(ev)
	var f api.Flow
	if n := testing.AllocsPerRun(100, func() { _ = dec.Decode(raw, &f) }); n != 0 {
		t.Fatalf("decoding with names allocates %v times", n)
	}
}
