package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// fastPolicies: /32 peers allowed on a few TCP ports (one of them denied
// on 8443), a /24 on a range, and anyone on UDP 53, both directions default
// deny: host peers get peer slots, the rest takes the ordinary path.
func fastPolicies() []*policy.Policy {
	var hosts []policy.PeerSelector
	for i := range 40 {
		hosts = append(hosts, policy.PeerSelector{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 7, 0, byte(i + 1)}), 32)})
	}
	ports := []policy.PortRange{{Proto: api.ProtoTCP, Lo: 443, Hi: 443}, {Proto: api.ProtoTCP, Lo: 8443, Hi: 8443},
		{Proto: api.ProtoICMPv4, Lo: 8, Hi: 8}}
	return []*policy.Policy{
		{Name: "hosts", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
			Egress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{
				{Peers: hosts, Ports: ports},
				{Peers: []policy.PeerSelector{{CIDR: netip.MustParsePrefix("10.8.0.0/24")}}, Ports: tcpPorts(9000, 9100)},
				{Peers: []policy.PeerSelector{{All: true}}, Ports: []policy.PortRange{{Proto: api.ProtoUDP, Lo: 53, Hi: 53}}},
			}},
			Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{{Peers: hosts[:5], Ports: tcpPorts(22, 22)}}},
		}}},
		{Name: "no-8443-to-3", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
			Egress: policy.DirectionRules{Deny: []policy.PeerRule{{Peers: hosts[2:3], Ports: tcpPorts(8443, 8443)}}}}}},
	}
}

// fastDecide is the kernel's judge over a filled fastTable, the spilled
// keys and the entries the hashes and tries hold (c.Policy minus what the
// table holds), for a peer with a host ipcache entry or none.
func fastDecide(t fastTable, c *compile.Compiled, spilled map[compile.Key]bool, peerSlots bool,
	ep uint32, peer netip.Addr, dir policy.Direction, proto uint8, port uint16) (compile.Value, bool) {
	var family uint8 = 6
	if peer.Unmap().Is4() {
		family = 4
	}
	ik, _ := ipcacheKey(netip.PrefixFrom(peer.Unmap(), peer.Unmap().BitLen()))
	if peerSlots {
		q := fastSlot(compile.Key{Endpoint: ep, Direction: uint8(dir), Proto: proto, Port: port}, compile.Value{}, family, ik.Addr)
		if s, ok, _ := t.lookup(&q); ok {
			return compile.Value{Action: compile.Action(s.Action), PolicySet: s.PolicySet}, true
		}
	}
	// The ordinary path, with the exact probe answered by the table or,
	// when the bucket spills, by the spilled keys only.
	hashed := &compile.Compiled{Policy: map[compile.Key]compile.Value{}, Flags: c.Flags}
	for k, v := range c.Policy {
		if !exactPort(k) || spilled[k] {
			hashed.Policy[k] = v
		}
	}
	id := c.IdentityOf(peer)
	for _, ident := range []uint32{id, 0} {
		f := c.Flags[ep]
		if ident != 0 && f&compile.FlagByIdentity == 0 || ident == 0 && f&compile.FlagAnyIdentity == 0 {
			continue
		}
		k := compile.Key{Endpoint: ep, Identity: ident, Direction: uint8(dir), Proto: proto, Port: port, PortBits: 16}
		q := fastSlot(k, compile.Value{}, 0, [16]byte{})
		if s, ok, spill := t.lookup(&q); ok {
			return compile.Value{Action: compile.Action(s.Action), PolicySet: s.PolicySet}, true
		} else if !spill && spilled[k] {
			panic("a spilled key's bucket is not marked")
		}
		// Only this identity: Lookup with FlagByIdentity off for identity 0.
		one := *hashed
		one.Flags = map[uint32]compile.ProbeFlags{ep: f &^ (compile.FlagByIdentity | compile.FlagAnyIdentity)}
		if ident == 0 {
			one.Flags[ep] |= compile.FlagAnyIdentity
			if v, ok := one.Lookup(compile.Key{Endpoint: ep, Direction: uint8(dir), Proto: proto, Port: port}); ok {
				return v, true
			}
		} else {
			one.Flags[ep] |= compile.FlagByIdentity
			if v, ok := one.Lookup(compile.Key{Endpoint: ep, Identity: ident, Direction: uint8(dir), Proto: proto, Port: port}); ok {
				return v, true
			}
		}
	}
	return compile.Value{}, false
}

func TestPolicyFastTableAnswersAsTheCompiler(t *testing.T) {
	c := compileTest(t, testEP, fastPolicies())
	var peers []netip.Addr
	for i := range 45 {
		peers = append(peers, netip.AddrFrom4([4]byte{10, 7, 0, byte(i)}))
	}
	peers = append(peers, netip.MustParseAddr("10.8.0.7"), netip.MustParseAddr("::ffff:10.7.0.4"),
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("fd00:1::9"))
	// 4 buckets: most keys spill, most peer slots find no room; 32768: none.
	for _, buckets := range []int{4, 64, 32768} {
		t.Run(fmt.Sprintf("%d buckets", buckets), func(t *testing.T) {
			tab := make(fastTable, buckets)
			spilledKeys, st := tab.fill(c)
			spilled := map[compile.Key]bool{}
			for _, k := range spilledKeys {
				spilled[k] = true
			}
			t.Logf("%+v", st)
			if buckets == 4 && st.spilled == 0 {
				t.Fatal("nothing spilled from 4 buckets")
			}
			if buckets == 32768 && (st.spilled != 0 || st.peers == 0) {
				t.Fatalf("32768 buckets: %+v, want no spill and peer slots", st)
			}
			for _, peer := range peers {
				for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
					for _, pp := range []struct {
						proto uint8
						port  uint16
					}{{6, 443}, {6, 8443}, {6, 22}, {6, 9050}, {6, 80}, {17, 53}, {1, 8}, {1, 0}} {
						want := c.Decide(testEP, c.IdentityOf(peer), dir, pp.proto, pp.port)
						v, ok := fastDecide(tab, c, spilled, st.peerEndpoints[testEP], testEP, peer, dir, pp.proto, pp.port)
						got := policy.NotSelected
						var names []policy.ID
						switch {
						case ok && v.Action == compile.Deny:
							got, names = policy.DeniedByDeny, c.PolicySets[v.PolicySet]
						case ok:
							got, names = policy.Allowed, c.PolicySets[v.PolicySet]
						case dir == policy.Ingress && c.Enforce[testEP].Ingress || dir == policy.Egress && c.Enforce[testEP].Egress:
							got = policy.Denied
						}
						if got != want.Verdict || !slices.Equal(names, want.Policies) {
							t.Errorf("%s %v %d/%d: %v %v, compiler says %v %v", peer, dir, pp.proto, pp.port, got, names, want.Verdict, want.Policies)
						}
					}
				}
			}
		})
	}
}

// collidingPorts returns n TCP ports whose identity-0 ingress keys of
// endpoint ep share one policy_fast bucket.
func collidingPorts(t *testing.T, ep uint32, buckets, n int) []uint16 {
	t.Helper()
	byBucket := map[int][]uint16{}
	for p := 1; p < 65536; p++ {
		k := compile.Key{Endpoint: ep, Direction: uint8(policy.Ingress), Proto: api.ProtoTCP, Port: uint16(p), PortBits: 16}
		s := fastSlot(k, compile.Value{}, 0, [16]byte{})
		b := policyFastHash(&s, buckets)
		byBucket[b] = append(byBucket[b], uint16(p))
		if len(byBucket[b]) == n {
			return byBucket[b]
		}
	}
	t.Fatalf("no %d ports share a bucket", n)
	return nil
}

func TestPolicyFastSpilledKeysAreJudgedByTheHash(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	ports := collidingPorts(t, testEP, len(d.fast[0]), 3) // a bucket holds two
	var pr []policy.PortRange
	for _, p := range ports {
		pr = append(pr, policy.PortRange{Proto: api.ProtoTCP, Lo: p, Hi: p})
	}
	c := compileTest(t, testEP, []*policy.Policy{{Name: "three", Kind: policy.KindCCNP, Rules: []policy.Rule{{
		Subject: *app("client"),
		Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{{Peers: []policy.PeerSelector{{All: true}}, Ports: pr}}},
	}}}})
	applyOK(t, d, c)
	q := fastSlot(compile.Key{Endpoint: testEP, Direction: uint8(policy.Ingress), Proto: api.ProtoTCP, Port: ports[2], PortBits: 16},
		compile.Value{}, 0, [16]byte{})
	if _, ok, spill := d.slot(d.PolicyRevision()).fast.lookup(&q); ok || !spill {
		t.Fatalf("port %d: in the table %v, bucket spills %v; want it spilled to the hash", ports[2], ok, spill)
	}
	for i, p := range append(slices.Clone(ports), ports[0]+1) {
		want := uint32(tcxNext)
		if i == len(ports) {
			want = tcxDrop
		}
		pc := policyCase{ingress: true, src: "8.8.8.8", dst: "10.0.0.1", sport: 40000 + uint16(i), dport: p}
		if ret := pc.run(t, d); ret != want {
			t.Errorf("port %d: action %#x, want %#x", p, ret, want)
		}
	}
}

func TestPolicyFastPeerSlotsJudgeAsTheOrdinaryPath(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	c := compileTest(t, testEP, fastPolicies())
	applyOK(t, d, c)
	var enf tcFlowPolicyEnforce
	if err := d.slot(d.PolicyRevision()).enforce.Lookup(uint32(testEP), &enf); err != nil {
		t.Fatal(err)
	}
	if enf.Flags&uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_FAST_PEERS) == 0 {
		t.Fatalf("enforce flags %#x: no peer slots", enf.Flags)
	}
	sport := uint16(30000)
	for _, peer := range []string{"10.7.0.1", "10.7.0.3", "10.7.0.40", "10.7.0.41", "10.8.0.7", "8.8.8.8"} {
		for _, port := range []uint16{443, 8443, 9050, 80} {
			sport++
			dec := c.Decide(testEP, c.IdentityOf(netip.MustParseAddr(peer)), policy.Egress, api.ProtoTCP, port)
			pc := policyCase{src: "10.0.0.1", dst: peer, sport: sport, dport: port}
			want := uint32(tcxNext)
			if dec.Verdict != policy.Allowed {
				want = tcxDrop
			}
			clearFlows(t, d)
			drain(t, d)
			if ret := pc.run(t, d); ret != want {
				t.Errorf("%s:%d: action %#x, want %#x (%v)", peer, port, ret, want, dec.Verdict)
				continue
			}
			flows := drain(t, d)
			if len(flows) != 1 {
				t.Fatalf("%s:%d: %d events, want a START", peer, port, len(flows))
			}
			names, _ := flowNames(&flows[0], false)
			if !slices.Equal(names, dec.Refs()) {
				t.Errorf("%s:%d: names %v, want %v", peer, port, names, dec.Refs())
			}
		}
	}
}
