package datapath

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// TestCleanRestartKeepsEnforcingAndConnections: with a policy in force, a
// clean Close leaves the programs attached and the maps pinned, the node
// keeps enforcing with nothing loaded, and the next Load adopts the flow
// table and swaps its programs in place, so an allowed connection whose
// replies only pass thanks to its flow entry lives through the restart,
// also when the new run has another flow table and ring buffer size.
func TestCleanRestartKeepsEnforcingAndConnections(t *testing.T) {
	for _, tc := range []struct {
		name        string
		flows, ring int // the second run's sizes; 0: the first run's
	}{
		{name: "same sizes"},
		{name: "new flow table and ring buffer sizes", flows: 4096, ring: 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) { cleanRestart(t, tc.flows, tc.ring) })
	}
}

func cleanRestart(t *testing.T, flows, ring int) {
	labtest.RequireRoot(t)
	pin := netlab.PinPath(t, "test-restart")
	l := newVethLab(t) // its Cleanup deletes the veth, which detaches anything left
	cfg := Config{PinPath: pin, Logger: quietLogger, ReportInterval: time.Hour, IdleTimeout: time.Hour}
	d1, err := Load(cfg)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = d1.Close() })
	if err := d1.AttachInterface(l.host); err != nil {
		t.Fatal(err)
	}
	ifc, err := net.InterfaceByName(l.host)
	if err != nil {
		t.Fatal(err)
	}
	// The pod accepts TCP 8080 from the host and may open nothing itself:
	// the replies of an accepted connection pass only through its entry.
	c := podPolicy(t, l, &policy.Policy{Name: "web-in", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
		Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{
			{Peers: []policy.PeerSelector{{Selector: app("web")}}, Ports: tcpPorts(8080, 8080)}}},
		Egress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{
			{Peers: []policy.PeerSelector{{Selector: app("web")}}, Ports: tcpPorts(9999, 9999)}}}}}})
	applyOK(t, d1, c)
	rev := d1.PolicyRevision()

	l.serveTCP(t, func(c net.Conn) { defer c.Close(); _, _ = io.Copy(c, c) }, 8080, 8081)
	dial := l.dialTCP
	echo := func(conn net.Conn) error {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		msg := []byte("still here")
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		_, err := io.ReadFull(conn, got)
		return err
	}
	// verdicts checks the long-lived connection, a new allowed one and a
	// denied one.
	verdicts := func(when string, long net.Conn) {
		t.Helper()
		if err := echo(long); err != nil {
			t.Fatalf("%s: the long-lived connection carries no data: %v", when, err)
		}
		if c, err := dial(8080); err != nil {
			t.Errorf("%s: allowed port refused: %v", when, err)
		} else {
			if err := echo(c); err != nil {
				t.Errorf("%s: new allowed connection: %v", when, err)
			}
			c.Close()
		}
		if c, err := dial(8081); err == nil {
			c.Close()
			t.Errorf("%s: denied port accepted a connection", when)
		}
	}
	attached := func(when string) []ebpf.ProgramID {
		t.Helper()
		var ids []ebpf.ProgramID
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at})
			if err != nil || len(res.Programs) != 1 {
				t.Fatalf("%s: %v: %+v (%v), want one program", when, at, res, err)
			}
			ids = append(ids, res.Programs[0].ID)
		}
		return ids
	}

	long, err := dial(8080)
	if err != nil {
		t.Fatalf("allowed connection: %v", err)
	}
	defer long.Close()
	verdicts("before the restart", long)

	if !d1.KeepsEnforcing() {
		t.Fatal("KeepsEnforcing false with a policy in force")
	}
	if err := d1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, name := range append(append([]string{"links/" + l.host + "-ingress", "links/" + l.host + "-egress"}, flowPins...), policyPins...) {
		if _, err := os.Stat(filepath.Join(pin, name)); err != nil {
			t.Errorf("clean Close with a policy in force left no %s: %v", name, err)
		}
	}
	oldIDs := attached("with nothing loaded")
	verdicts("with nothing loaded", long)

	cfg2 := cfg
	cfg2.FlowTableSize, cfg2.RingBufferSize = flows, ring
	d2, err := Load(cfg2)
	if err != nil {
		t.Fatalf("load again: %v", err)
	}
	t.Cleanup(func() { _ = d2.Close() })
	if flows != 0 && int(d2.objs.Flows.MaxEntries()) != flows || ring != 0 && int(d2.objs.Events.MaxEntries()) != ring {
		t.Errorf("second run's flow table %d entries, ring %d bytes; want %d and %d",
			d2.objs.Flows.MaxEntries(), d2.objs.Events.MaxEntries(), flows, ring)
	}
	if got := d2.PolicyRevision(); got != rev {
		t.Errorf("adopted revision %d, want %d", got, rev)
	}
	if n := flowCount(t, d2); n == 0 {
		t.Error("the adopted flow table is empty")
	}
	verdicts("loaded, not yet attached", long)
	if err := d2.AttachInterface(l.host); err != nil {
		t.Fatalf("re-attach: %v", err)
	}
	newIDs := attached("after re-attach")
	want := []ebpf.ProgramID{}
	for _, p := range []*ebpf.Program{d2.objs.FlowIngress, d2.objs.FlowEgress} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		want = append(want, id)
	}
	if newIDs[0] != want[0] || newIDs[1] != want[1] || newIDs[0] == oldIDs[0] {
		t.Errorf("attached programs %v (before %v), want the new run's %v", newIDs, oldIDs, want)
	}
	verdicts("after the restart", long)

	applyOK(t, d2, nil)
	if d2.KeepsEnforcing() {
		t.Error("KeepsEnforcing true without policy")
	}
	if err := d2.Close(); err != nil {
		t.Fatalf("close without policy: %v", err)
	}
	// PinPath held only the adopted state: d2 removes it.
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		ents, _ := os.ReadDir(pin)
		t.Errorf("pin path left after a Close without policy: %v %v", ents, err)
	}
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		if res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at}); err != nil || len(res.Programs) != 0 {
			t.Errorf("%v: programs left attached (%v): %+v", at, err, res)
		}
	}
}
