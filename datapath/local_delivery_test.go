package datapath

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Two more local endpoints beside testEP (the client, 10.0.0.1): a server
// whose ingress policy is enforced and one in audit mode.
const (
	// InitiatorHook of a record: the initiator's packets enter the host at
	// its interface (the source's record) or leave it (the destination's).
	hookIn  = api.TrafficDirectionIngress
	hookOut = api.TrafficDirectionEgress

	serverEP      = 4242
	auditServerEP = 4343
)

// localPolicies: the servers' ingress is default deny; the client may
// reach them on TCP 80, never on TCP 23.
func localPolicies(allowPort uint16) []*policy.Policy {
	client := []policy.PeerSelector{{Selector: app("client")}}
	return []*policy.Policy{
		{Name: "server-in", Namespace: "default", Kind: policy.KindCNP, Rules: []policy.Rule{{Subject: *app("server"),
			Ingress: policy.DirectionRules{DefaultDeny: true,
				Allow: []policy.PeerRule{{Peers: client, Ports: tcpPorts(allowPort, allowPort)}},
				Deny:  []policy.PeerRule{{Peers: client, Ports: tcpPorts(23, 23)}}}}}},
	}
}

func compileLocal(t testing.TB, allowPort uint16) *compile.Compiled {
	t.Helper()
	ep := func(id, identity uint32, label, addr string) compile.Endpoint {
		return compile.Endpoint{ID: id, Identity: identity, Namespace: "default", Labels: []string{"k8s:app=" + label},
			IPs: []netip.Addr{netip.MustParseAddr(addr)}}
	}
	c, err := compile.Compile(compile.Input{
		Policies: localPolicies(allowPort),
		Endpoints: []compile.Endpoint{ep(testEP, 1500, "client", "10.0.0.1"), ep(serverEP, 1600, "server", "10.0.0.2"),
			ep(auditServerEP, 1601, "server", "10.0.0.3")},
	})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return c
}

// TestPolicyOfALocalDestinationDropsAtTheSource: a connection a local pod
// starts towards a local endpoint whose ingress policy drops it is dropped
// at the source's hook (before the bridge), and reported as that
// endpoint's ingress record; what it allows or audits is the source's own
// record, judged again at the destination.
func TestPolicyOfALocalDestinationDropsAtTheSource(t *testing.T) {
	d := loadForTest(t, Config{ReportInterval: time.Hour})
	if err := d.SetPolicyAudit(auditServerEP, true); err != nil {
		t.Fatal(err)
	}
	applyOK(t, d, compileLocal(t, 80))
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })

	cases := []struct {
		name    string
		dst     string
		dport   uint16
		action  uint32
		ifindex uint32 // of the record
		hook    api.TrafficDirection
		verdict api.Verdict
		reason  api.DropReason
		denied  []string // ingress_denied_by
	}{
		{"allowed: the source's own record, forwarded", "10.0.0.2", 80, tcxNext, testEP, hookIn, api.VerdictForwarded, 0, nil},
		{"no allow: dropped at the source as the server's ingress", "10.0.0.2", 81, tcxDrop, serverEP, hookOut,
			api.VerdictDropped, api.DropReasonPolicyDenied, nil},
		{"explicit deny: dropped at the source, naming the policy", "10.0.0.2", 23, tcxDrop, serverEP, hookOut,
			api.VerdictDropped, api.DropReasonPolicyDeny, []string{"default/server-in"}},
		{"audit: passes, the audit server reports it itself", "10.0.0.3", 81, tcxNext, testEP, hookIn, api.VerdictForwarded, 0, nil},
		{"not a local endpoint: passes", "10.0.0.9", 81, tcxNext, testEP, hookIn, api.VerdictForwarded, 0, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearFlows(t, d)
			drain(t, d)
			syn := v4("10.0.0.1", tc.dst, 6, tcpHeader(uint16(41000+i), tc.dport, 0x02))
			for p := range 2 {
				if ret, _ := runPacket(t, d.objs.FlowIngress, syn); ret != tc.action {
					t.Fatalf("packet %d: action %#x, want %#x", p, ret, tc.action)
				}
			}
			flows := drain(t, d)
			if len(flows) != 1 {
				t.Fatalf("%d events, want one START", len(flows))
			}
			f := flows[0]
			if f.Interface.Index != tc.ifindex || f.InitiatorHook != tc.hook || f.Verdict != tc.verdict || f.DropReason != tc.reason {
				t.Errorf("record at ifindex %d hook %v: %v reason %d, want ifindex %d hook %v: %v reason %d",
					f.Interface.Index, f.InitiatorHook, f.Verdict, f.DropReason, tc.ifindex, tc.hook, tc.verdict, tc.reason)
			}
			if !slices.Equal(refNames(f.IngressDeniedBy), tc.denied) || len(f.EgressAllowedBy)+len(f.EgressDeniedBy) > 0 {
				t.Errorf("policies: ingress denied by %v egress %v/%v, want ingress denied by %v",
					f.IngressDeniedBy, f.EgressAllowedBy, f.EgressDeniedBy, tc.denied)
			}
			if n := tableCounters(t, d); n.PacketsForward != 2 {
				t.Errorf("table counts %d packets, want both", n.PacketsForward)
			}
			// The sweeper's End record belongs to the same endpoint.
			var ev flowEvent
			var k tcFlowFlowKey
			var v tcFlowFlowValue
			it := d.objs.Flows.Iterate()
			for it.Next(&k, &v) {
				endEvent(&ev, &k, &v, 0)
			}
			if ev.Ifindex != tc.ifindex {
				t.Errorf("End record at ifindex %d, want %d", ev.Ifindex, tc.ifindex)
			}
		})
	}

	// A policy that allows the dropped connection makes it the source's
	// own again at its next packet; one that drops it again keeps it the
	// server's.
	clearFlows(t, d)
	drain(t, d)
	syn := v4("10.0.0.1", "10.0.0.2", 6, tcpHeader(42000, 81, 0x02))
	if ret, _ := runPacket(t, d.objs.FlowIngress, syn); ret != tcxDrop {
		t.Fatalf("before the change: action %#x, want drop", ret)
	}
	applyOK(t, d, compileLocal(t, 82))
	if ret, _ := runPacket(t, d.objs.FlowIngress, syn); ret != tcxDrop {
		t.Fatalf("still denied: action %#x, want drop", ret)
	}
	applyOK(t, d, compileLocal(t, 81))
	if ret, _ := runPacket(t, d.objs.FlowIngress, syn); ret != tcxNext {
		t.Fatalf("allowed now: action %#x, want pass", ret)
	}
	flows := drain(t, d)
	if len(flows) != 2 || flows[0].Interface.Index != serverEP ||
		flows[1].Event != api.EventState || flows[1].Interface.Index != testEP || flows[1].Verdict != api.VerdictForwarded {
		t.Fatalf("events %+v, want START (server, dropped) then STATE (client, forwarded)", flows)
	}
}
