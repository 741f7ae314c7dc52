package datapath

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// TestSockTracepointReportsHostConnections checks that each socket of a
// host connection is reported once, when it closes, with its process:
// the dialer's from connect(), the acceptor's from close() (the transition
// to CLOSE itself may run in softirq, where the current task is another).
// Both records go from the dialer to the listener's port.
func TestSockTracepointReportsHostConnections(t *testing.T) {
	d := loadForTest(t, Config{})
	if err := d.AttachSockTracepoint(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	var mu sync.Mutex
	var got []api.Flow
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, func(f *api.Flow) {
			if f.Type == api.FlowTypeSock && f.L4.DestinationPort == port {
				mu.Lock()
				got = append(got, *f)
				mu.Unlock()
			}
		})
	}()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	for deadline := time.Now().Add(5 * time.Second); received() < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a third record would come with the two
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("got %d sock records of the connection, want two (each socket's close): %+v", len(got), got)
	}
	for _, f := range got {
		if f.Process.PID != uint32(os.Getpid()) || f.Process.Comm == "" || f.Process.CgroupID == 0 || f.Event != api.EventSock {
			t.Errorf("record %v of process %+v, want a SOCK record of this process (pid %d)", f.Event, f.Process, os.Getpid())
		}
		if f.IP.Source.String() != "127.0.0.1" || f.L4.Protocol != api.ProtoTCP {
			t.Errorf("record %v -> %v proto %d, want TCP from 127.0.0.1", f.IP.Source, f.IP.Destination, f.L4.Protocol)
		}
	}
}

// TestSockRecordsOfADroppedConnectAreTraced: a host process connects to a
// pod whose ingress policy drops it (and to a port it allows). The L3_L4
// records carry the policy's verdicts, and the socket's close folds into
// its connection's record (its process beside the verdict: DROPPED for the
// dropped connect); a socket record standing alone would say TRACED, never
// FORWARDED beside a drop.
func TestSockRecordsOfADroppedConnectAreTraced(t *testing.T) {
	// The dropped connect never closes as TCP: the idle timeout ends it.
	d := loadForTest(t, Config{ReportInterval: time.Hour, IdleTimeout: 2 * time.Second})
	if err := d.AttachSockTracepoint(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	l := newVethLab(t)
	if err := d.AttachInterface(l.host); err != nil {
		t.Fatal(err)
	}
	ifc, err := net.InterfaceByName(l.host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := compile.Compile(compile.Input{
		Policies: []*policy.Policy{{Name: "host-8080", Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
			Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{
				{Peers: []policy.PeerSelector{{Selector: app("web")}}, Ports: tcpPorts(8080, 8080)}}}}}}},
		Endpoints:  []compile.Endpoint{{ID: uint32(ifc.Index), Identity: 1500, Labels: []string{"k8s:app=client"}, IPs: []netip.Addr{l.podIP}}},
		Identities: []identity.Identity{{ID: 2001, Labels: identity.NewLabels("k8s:app=web")}},
		IPCache:    []compile.IPEntry{{Prefix: netip.PrefixFrom(l.hostIP, 32), Identity: 2001}},
	})
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, d, c)
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })

	var mu sync.Mutex
	var flows []api.Flow
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, func(f *api.Flow) {
			if f.L4.Protocol == api.ProtoTCP && (f.L4.DestinationPort == 8080 || f.L4.DestinationPort == 8081) {
				mu.Lock()
				flows = append(flows, *f)
				mu.Unlock()
			}
		})
	}()
	l.inNS(t, func() {
		for _, port := range []int{8080, 8081} {
			ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", l.podIP, port))
			if err != nil {
				t.Errorf("listen: %v", err)
				return
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
	})
	dial := func(port int) error {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", l.podIP, port), 700*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(8080); err != nil {
		t.Fatalf("allowed connection: %v", err)
	}
	if err := dial(8081); err == nil {
		t.Fatal("the dropped connection was established")
	}

	// Wait for both ports' L3_L4 start records and the End records that
	// carry the dialer's process (its socket's close folded in) under a
	// deadline.
	summary := func() (l3, ends map[uint16]api.Verdict, sock map[uint16][]api.Verdict) {
		mu.Lock()
		defer mu.Unlock()
		l3, ends, sock = map[uint16]api.Verdict{}, map[uint16]api.Verdict{}, map[uint16][]api.Verdict{}
		for _, f := range flows {
			switch {
			case f.Type == api.FlowTypeL3L4 && f.Event == api.EventStart:
				l3[f.L4.DestinationPort] = f.Verdict
			case f.Type == api.FlowTypeL3L4 && f.Event == api.EventEnd && f.Process.PID == uint32(os.Getpid()):
				ends[f.L4.DestinationPort] = f.Verdict
			case f.Type == api.FlowTypeSock && f.Process.PID == uint32(os.Getpid()):
				sock[f.L4.DestinationPort] = append(sock[f.L4.DestinationPort], f.Verdict)
			}
		}
		return l3, ends, sock
	}
	deadline := time.Now().Add(15 * time.Second)
	l3, ends, sock := summary()
	for (len(l3) < 2 || len(ends) < 2) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		l3, ends, sock = summary()
	}
	if l3[8080] != api.VerdictForwarded || l3[8081] != api.VerdictDropped {
		t.Errorf("L3_L4 verdicts %v, want 8080 FORWARDED and 8081 DROPPED", l3)
	}
	// The dialer's process is on its connection's record, whose verdict
	// is the connection's: DROPPED for the dropped connect.
	if ends[8080] != api.VerdictForwarded || ends[8081] != api.VerdictDropped {
		t.Errorf("End records with the dialer's process: %v, want 8080 FORWARDED and 8081 DROPPED", ends)
	}
	// A socket record standing alone (none is expected) says TRACED.
	for _, port := range []uint16{8080, 8081} {
		for _, v := range sock[port] {
			if v != api.VerdictTraced {
				t.Errorf("port %d: a SOCK record says %v, want TRACED (all: %v)", port, v, sock[port])
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
