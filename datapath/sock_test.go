package datapath

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// TestSockTracepointReportsHostConnections checks that each socket of a
// host connection is reported once, when it closes, with its process:
// the dialer's from connect(), the acceptor's from close() (the transition
// to CLOSE itself may run in softirq, where the current task is another).
// Both records go from the dialer to the listener's port.
func TestSockTracepointReportsHostConnections(t *testing.T) {
	d, ln := loopbackSockLab(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	rec := recordFlows(t, d, func(f *api.Flow) bool { return f.Type == api.FlowTypeSock && f.L4.DestinationPort == port })
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
	for deadline := time.Now().Add(5 * time.Second); len(rec.Flows()) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a third record would come with the two
	got := rec.Stop(t)
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
	applyOK(t, d, podPolicy(t, l, webTo8080("host-8080")))
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })

	rec := recordFlows(t, d, func(f *api.Flow) bool {
		return f.L4.Protocol == api.ProtoTCP && (f.L4.DestinationPort == 8080 || f.L4.DestinationPort == 8081)
	})
	l.serveTCP(t, closeConn, 8080, 8081)
	if err := l.connectTCP(8080); err != nil {
		t.Fatalf("allowed connection: %v", err)
	}
	if err := l.connectTCP(8081); err == nil {
		t.Fatal("the dropped connection was established")
	}

	// Wait for both ports' L3_L4 start records and the End records that
	// carry the dialer's process (its socket's close folded in) under a
	// deadline.
	summary := func() (l3, ends map[uint16]api.Verdict, sock map[uint16][]api.Verdict) {
		l3, ends, sock = map[uint16]api.Verdict{}, map[uint16]api.Verdict{}, map[uint16][]api.Verdict{}
		for _, f := range rec.Flows() {
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
	rec.Stop(t)
}

// loopbackSockLab loads a datapath with the socket tracepoint attached, and
// a TCP listener of this process on 127.0.0.1 that is closed when the test
// ends.
func loopbackSockLab(t *testing.T) (*Datapath, net.Listener) {
	t.Helper()
	d := loadForTest(t, Config{})
	if err := d.AttachSockTracepoint(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return d, ln
}
