package datapath

import (
	"context"
	"net"
	"os"
	"sync"
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
