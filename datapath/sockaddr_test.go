package datapath

import (
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// TestSockTracepointReportsLoopbackConnectionExactly dials a listener of
// this process over loopback and checks the SOCK records of both sockets,
// one each, at their close: addresses, ports, process and the exact payload
// byte counts. (No flow program watches lo here: the datapath has no other
// record of the connection to fold them into.)
func TestSockTracepointReportsLoopbackConnectionExactly(t *testing.T) {
	d, ln := loopbackSockLab(t)
	srvPort := uint16(ln.Addr().(*net.TCPAddr).Port)

	rec := recordFlows(t, d, func(f *api.Flow) bool {
		return f.Type == api.FlowTypeSock && (f.L4.DestinationPort == srvPort || f.L4.SourcePort == srvPort)
	})

	const request, reply = "hello", "hello, client"
	srvDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		defer c.Close()
		buf := make([]byte, len(request))
		if _, err := io.ReadFull(c, buf); err != nil {
			srvDone <- err
			return
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			srvDone <- err
			return
		}
		_, err = io.Copy(io.Discard, c) // until the client's FIN
		srvDone <- err
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cliPort := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	if _, err := c.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, len(reply))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-srvDone; err != nil {
		t.Fatalf("server: %v", err)
	}

	// Both sockets report CLOSE: the client's once the server's FIN is in.
	var closes []api.Flow
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		closes = closes[:0]
		for _, f := range rec.Flows() {
			if f.L4.SourcePort == cliPort && f.Counters != (api.Counters{}) {
				closes = append(closes, f)
			}
		}
		if len(closes) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := rec.Stop(t)
	loopback := netip.MustParseAddr("127.0.0.1")
	n := 0
	for _, f := range got {
		if f.L4.SourcePort != cliPort {
			continue // an earlier connection's
		}
		n++
		t.Logf("sock record: %v:%d -> %v:%d pid %d comm %q counters %+v", f.IP.Source, f.L4.SourcePort,
			f.IP.Destination, f.L4.DestinationPort, f.Process.PID, f.Process.Comm, f.Counters)
		if f.IP.Source != loopback || f.IP.Destination != loopback || f.IP.Version != api.IPv4 {
			t.Errorf("addresses %v -> %v, want 127.0.0.1 both sides", f.IP.Source, f.IP.Destination)
		}
		if f.L4.DestinationPort != srvPort || f.L4.Protocol != api.ProtoTCP {
			t.Errorf("l4 %+v, want TCP %d -> %d", f.L4, cliPort, srvPort)
		}
		if f.Process.PID != uint32(os.Getpid()) || !strings.HasPrefix(os.Args[0][strings.LastIndex(os.Args[0], "/")+1:], f.Process.Comm) || f.Process.Comm == "" {
			t.Errorf("process %+v, want pid %d comm of %s", f.Process, os.Getpid(), os.Args[0])
		}
	}
	if n != 2 {
		t.Errorf("%d records of the connection, want one per socket (its close)", n)
	}
	if len(closes) != 2 {
		t.Fatalf("%d CLOSE records with counts, want 2 (client and server)", len(closes))
	}
	// The counts are TCP sequence space (sock_trace.c): payload plus one for
	// each SYN or FIN. The client (the closer) had its SYN and FIN acked and
	// got the server's FIN; the server had its FIN acked and got the
	// client's FIN (a passive opener's SYN-ACK and the SYN it answers are
	// not counted by the kernel).
	client := [2]uint64{uint64(len(request)) + 2, uint64(len(reply)) + 1}
	server := [2]uint64{uint64(len(request)) + 1, uint64(len(reply)) + 1}
	seen := map[[2]uint64]bool{}
	for _, f := range closes {
		c := f.Counters
		seen[[2]uint64{c.BytesForward, c.BytesReply}] = true
		if c.PacketsForward == 0 || c.PacketsReply == 0 {
			t.Errorf("CLOSE counters %+v, want segments both ways", c)
		}
	}
	if !seen[client] || !seen[server] {
		t.Errorf("CLOSE byte counts %v, want client %v and server %v", seen, client, server)
	}
}
