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
			if f.Type == api.FlowTypeSock && f.L4.DestinationPort == port && f.Process.PID == uint32(os.Getpid()) {
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
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 2 {
		t.Fatalf("got %d sock records of the dialer, want SYN_SENT and ESTABLISHED at least: %+v", len(got), got)
	}
	for _, f := range got {
		if f.Process.Comm == "" || f.Process.CgroupID == 0 || f.Event != api.EventSock {
			t.Errorf("record %+v lacks process info", f.Process)
		}
	}
}
