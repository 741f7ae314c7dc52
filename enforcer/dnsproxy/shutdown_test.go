package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// loopbackProxy serves on 127.0.0.1 with the test's client address as the
// endpoint, forwarding every query to upstream instead of the original
// destination (which, unredirected, is the proxy itself).
func loopbackProxy(t *testing.T, opts Options, upstream netip.AddrPort) *Proxy {
	t.Helper()
	labtest.RequireRoot(t) // IP_TRANSPARENT and raw sockets
	opts.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	opts.Endpoints = endpointMap{netip.MustParseAddr("127.0.0.1"): clientEP}
	opts.Policy = allowAll(t)
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.exchange = func(ctx context.Context, proto uint8, from netip.Addr, _ netip.AddrPort, q []byte) ([]byte, error) {
		return p.up.exchange(ctx, proto, from, upstream, q)
	}
	p.udpUp.route = func(netip.AddrPort) netip.AddrPort { return upstream }
	return p
}

func allowAll(t testing.TB) Policy {
	tab := testTable(t)
	return policyFunc(func(q dnsmatchQuery) dnsmatchVerdict {
		q.Endpoint, q.Server = 7, server // the rule's port 53, whatever the proxy's port
		return tab.Check(q)
	})
}

// silentServer reads UDP and TCP queries on loopback and never answers.
func silentServer(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ln, err := net.Listen("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return addr
}

func TestShutdownWithQueriesInFlightLeavesNothingBehind(t *testing.T) {
	before := runtime.NumGoroutine()
	p := loopbackProxy(t, Options{Timeout: 30 * time.Second, MaxInFlight: 8}, silentServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	var records int
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(*api.Flow) { records++ }) }()
	addr := p.Addrs()[0]

	// Eight queries wait for a server that never answers; the ninth finds
	// no room and gets SERVFAIL at once; a TCP client sits idle.
	var wg sync.WaitGroup
	rcodes := make([]int, 8)
	for i := range 8 {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 40 * time.Second}
			m := new(dns.Msg)
			m.SetQuestion("slow.example.com.", dns.TypeA)
			m.Id = uint16(i + 1)
			rcodes[i] = -1
			if r, _, err := c.Exchange(m, addr.String()); err == nil {
				rcodes[i] = r.Rcode
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(p.inFlight) < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d queries in flight after 10s, want 8", len(p.inFlight))
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	r, _, err := (&dns.Client{Net: "udp", Timeout: 5 * time.Second}).Exchange(m, addr.String())
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("a query over MaxInFlight: %v %v, want an immediate SERVFAIL", r, err)
	}
	idle, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with 8 queries waiting on a 30s timeout", took)
	}
	wg.Wait()
	for i, rc := range rcodes {
		if rc != dns.RcodeServerFailure {
			t.Errorf("query %d cut short by the shutdown got rcode %d, want SERVFAIL", i, rc)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the waiting clients got their answers %v after the shutdown began", took)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("the idle TCP client's connection is still open")
	}
	if s := p.Stats(); s.Overload != 1 || s.Queries != 9 {
		t.Errorf("stats %+v, want 9 queries, 1 overload", s)
	}
	if records != 8+8 { // 8 requests and their 8 ERROR responses
		t.Errorf("%d records emitted, want 16", records)
	}
	deadline = time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+4 { // the silent server's two, slack
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
