package collector_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/relay/hubble"
	"github.com/periscope-dev/periscope/ui"
)

// followerNode is a collector with the APIs that follow its ring, wired as
// `periscope collector` wires them: the HTTP API, the web UI's WebSocket
// and Hubble's gRPC API, sharing one bound of followers.
type followerNode struct {
	c          *collector.Collector
	src        *apitest.Source
	httpAddr   string
	hubbleAddr string
}

func startFollowerNode(t *testing.T, maxFollowers int) *followerNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]http.Handler{}
	src := apitest.NewSource(nil, 1024)
	c, err := collector.New(collector.Options{
		Topology: &collector.Topology{NodeName: "node1", Endpoints: []collector.ResolvedEndpoint{
			{Config: collector.EndpointConfig{Name: "frontend-7d4", Namespace: "shop", Labels: map[string]string{"app": "frontend", "tier": "web"}},
				HostIfIndex: 10, HostIfName: "veth-fe", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.2")}},
			{Config: collector.EndpointConfig{Name: "backend-5c", Namespace: "shop", Labels: map[string]string{"app": "backend"}},
				HostIfIndex: 11, HostIfName: "veth-be", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.3")}},
		}},
		Sources: []collector.Source{src}, Listener: ln, Handlers: handlers, RingSize: 8192, MaxFollowers: maxFollowers,
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := ui.New(ui.Options{Source: c.Store(), Followers: c.Followers()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	handlers["GET /"] = u
	apitest.Start(t, "collector", c)

	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- hubble.Serve(ctx, hln, hubble.NewCollectorBackend(c), hubble.Options{Followers: c.Followers()})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &followerNode{c: c, src: src, httpAddr: c.Addr().String(), hubbleAddr: hln.Addr().String()}
}

// push sends n flows through the pipeline and waits until they are in
// the ring.
func (n *followerNode) push(t *testing.T, count int) {
	t.Helper()
	want := n.c.Store().Seen() + uint64(count)
	now := time.Now()
	for i := range count {
		n.src.Live <- api.Flow{
			Time: now.Add(time.Duration(i) * time.Microsecond), Verdict: api.VerdictForwarded, Type: api.FlowTypeL3L4,
			IP:        api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
			L4:        api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(i), DestinationPort: 8080, TCPFlags: api.TCPFlagSYN},
			Interface: api.Interface{Index: 10}, UUID: [16]byte{byte(i), byte(i >> 8), byte(i >> 16), 1},
		}
	}
	waitUntil(t, "the flows to be stored", func() bool { return n.c.Store().Seen() >= want })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// httpFollower asks for a follow over a raw connection with a small
// receive buffer and never reads the answer.
func httpFollower(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/flows?follow HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	return conn
}

// wsFollower opens the web UI's WebSocket, subscribes to everything and
// never reads.
func wsFollower(t *testing.T, addr string) (*websocket.Conn, error) {
	t.Helper()
	d := websocket.Dialer{ReadBufferSize: 1024, NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, a)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	conn, resp, err := d.Dial("ws://"+addr+"/api/v1/ws", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w: %s", err, resp.Status)
		}
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.WriteJSON(map[string]any{"type": "subscribe"}); err != nil {
		t.Fatal(err)
	}
	return conn, nil
}

// grpcFollower calls GetFlows with follow and never receives; the client's
// windows are fixed at gRPC's smallest, so it buffers little itself.
func grpcFollower(t *testing.T, addr string) (observerpb.Observer_GetFlowsClient, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := observerpb.NewObserverClient(conn).GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true})
	if err != nil {
		return nil, err
	}
	return stream, nil
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Followers that never read cost what their budgets say, however many
// flows pass them, and one more than the bound is refused with a 503 (or
// ResourceExhausted) whatever API it comes by.
func TestFollowersThatNeverReadStayWithinTheirBudget(t *testing.T) {
	const each = 32 // followers of each kind
	// Besides its followers, the web UI's hub holds a bounded queue of
	// flows on their way to its clients, one queue however many clients
	// (ui's inboundBuffer flows, each with its JSON).
	const hubQueue = 16 << 20
	n := startFollowerNode(t, 3*each)
	n.push(t, 8192)
	before := liveHeap()

	for range each {
		httpFollower(t, n.httpAddr)
		if _, err := wsFollower(t, n.httpAddr); err != nil {
			t.Fatal(err)
		}
		if _, err := grpcFollower(t, n.hubbleAddr); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "every follower to be served", func() bool { return n.c.Followers().InUse() == 3*each })

	// One more of any kind is refused, saying why.
	resp, err := http.Get("http://" + n.httpAddr + "/api/v1/flows?follow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("an HTTP follow beyond the bound: %s (Retry-After %q), want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	if _, err := wsFollower(t, n.httpAddr); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a WebSocket beyond the bound: %v, want a 503", err)
	}
	stream, err := grpcFollower(t, n.hubbleAddr)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many live followers") {
		t.Errorf("a gRPC follow beyond the bound: %v, want ResourceExhausted", err)
	}
	// Non-follow reads are not followers: they still work.
	if resp, err := http.Get("http://" + n.httpAddr + "/api/v1/flows?last=1"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a query at the bound of followers: %v %v", resp, err)
	}

	// Flows pass them: far more than their sockets hold.
	var peak int64
	for range 8 {
		n.push(t, 25000)
		peak = max(peak, liveHeap())
	}
	grown := peak - before
	budget := int64(each)*(2*256<<10) + int64(each)*(ui.DefaultClientBuffer+256<<10) + hubQueue
	t.Logf("heap before %.1f MiB, peak %.1f MiB", float64(before)/(1<<20), float64(peak)/(1<<20))
	t.Logf("%d non-reading followers (%d each over HTTP, WebSocket, gRPC) grew the heap by %.1f MiB (budget %.1f MiB)",
		3*each, each, float64(grown)/(1<<20), float64(budget)/(1<<20))
	if grown > budget {
		t.Errorf("%d non-reading followers grew the heap by %d bytes, more than their budget of %d", 3*each, grown, budget)
	}
	if n.c.Store().Skipped() == 0 {
		t.Error("no follower skipped anything: the test did not make them fall behind")
	}
}
