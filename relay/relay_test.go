package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
)

// testFlow is flow n at time at: from 198.18.0.2 port n to 198.18.0.3:8080.
func testFlow(n int, at time.Time) api.Flow {
	return api.Flow{
		Time:    at,
		Verdict: api.VerdictForwarded,
		Type:    api.FlowTypeL3L4,
		IP:      api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
		L4:      api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(n), DestinationPort: 8080, TCPFlags: api.TCPFlagSYN},
	}
}

// testNode is a collector with a fake source on 127.0.0.1.
type testNode struct {
	name   string
	addr   string // host:port, kept across restarts
	src    *apitest.Source
	c      *collector.Collector
	tls    *tls.Config
	cancel context.CancelFunc
	done   chan error
}

func startNode(t testing.TB, name, addr string, canned []api.Flow, tlsCfg *tls.Config, tweak ...func(*collector.Options)) *testNode {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // a restarted node may wait for its old port
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	src := apitest.NewSource(canned, 1024)
	opts := collector.Options{
		Topology: &collector.Topology{NodeName: name},
		Sources:  []collector.Source{src},
		Listener: ln,
		RingSize: 4096,
		Version:  "test",
	}
	for _, fn := range tweak {
		fn(&opts)
	}
	c, err := collector.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{name: name, addr: ln.Addr().String(), src: src, c: c, tls: tlsCfg, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	<-c.Ready()
	for c.Store().Seen() < uint64(len(canned)) {
		time.Sleep(time.Millisecond)
	}
	return n
}

func (n *testNode) stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node %s: Run: %v", n.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("node %s: Run did not return", n.name)
	}
}

// emit sends flows to the node's pipeline and waits until they are stored.
func (n *testNode) emit(flows ...api.Flow) {
	seen := n.c.Store().Seen()
	for _, f := range flows {
		n.src.Live <- f
	}
	for n.c.Store().Seen() < seen+uint64(len(flows)) {
		time.Sleep(time.Millisecond)
	}
}

func startRelay(t testing.TB, opts Options) (*Relay, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 100 * time.Millisecond
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("relay Run did not return")
		}
	})
	<-r.Ready()
	return r, "http://" + r.Addr().String()
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func nodeStatus(r *Relay, addr string) NodeStatus {
	for _, n := range r.Status().Nodes {
		if n.Address == addr {
			return n
		}
	}
	return NodeStatus{}
}

// got is a flow as a client of the relay sees it.
type got struct {
	node string
	port int
	time time.Time
}

// getFlows reads a history answer from the relay.
func getFlows(t testing.TB, base, query string) ([]got, http.Header, http.Header) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/flows?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	var out []got
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		out = append(out, parseGot(t, sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out, resp.Header, resp.Trailer
}

func parseGot(t testing.TB, line []byte) got {
	t.Helper()
	var f api.Flow
	if err := api.ParseJSON(line, &f); err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	return got{node: f.NodeName, port: int(f.L4.SourcePort), time: f.Time}
}

// follower reads a live answer from the relay in the background.
type follower struct {
	header http.Header
	mu     sync.Mutex
	flows  []got
	cancel context.CancelFunc
	done   chan struct{}
}

func follow(t testing.TB, base, query string) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/flows?follow=1&"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	fl := &follower{header: resp.Header, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(fl.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			g := parseGot(t, sc.Bytes())
			fl.mu.Lock()
			fl.flows = append(fl.flows, g)
			fl.mu.Unlock()
		}
	}()
	t.Cleanup(fl.stop)
	return fl
}

func (fl *follower) stop() {
	fl.cancel()
	<-fl.done
}

func (fl *follower) got() []got {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return slices.Clone(fl.flows)
}

func (fl *follower) waitCount(t testing.TB, n int) []got {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d flows", n), func() bool { return len(fl.got()) >= n })
	return fl.got()
}

func sortedByTime(gs []got) bool {
	return slices.IsSortedFunc(gs, func(a, b got) int { return a.time.Compare(b.time) })
}

func threeNodes(t *testing.T, canned func(node int) []api.Flow) []*testNode {
	nodes := make([]*testNode, 3)
	for i := range nodes {
		var c []api.Flow
		if canned != nil {
			c = canned(i)
		}
		nodes[i] = startNode(t, fmt.Sprintf("node%d", i+1), "", c, nil)
	}
	return nodes
}

func addrs(nodes []*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.addr)
	}
	return out
}

func TestLiveStreamIsMergedInTimeOrderWithinTheWindow(t *testing.T) {
	nodes := threeNodes(t, nil)
	r, base := startRelay(t, Options{Peers: addrs(nodes), MergeWindow: 500 * time.Millisecond})
	waitFor(t, "all peers connected", func() bool { return r.Status().NumConnectedNodes == 3 })
	fl := follow(t, base, "")

	// Flow i belongs to node i%3; the nodes send theirs in reverse node
	// order, so the relay receives them out of time order.
	t0 := time.Now()
	const total = 90
	for n := 2; n >= 0; n-- {
		var batch []api.Flow
		for i := n; i < total; i += 3 {
			batch = append(batch, testFlow(i+1, t0.Add(time.Duration(i)*time.Millisecond)))
		}
		nodes[n].emit(batch...)
	}
	gs := fl.waitCount(t, total)
	if len(gs) != total {
		t.Fatalf("got %d flows, want %d", len(gs), total)
	}
	if !sortedByTime(gs) {
		t.Errorf("flows not in time order: %v", gs)
	}
	for i, g := range gs {
		if want := fmt.Sprintf("node%d", i%3+1); g.port != i+1 || g.node != want {
			t.Fatalf("flow %d: got port %d from %s, want port %d from %s", i, g.port, g.node, i+1, want)
		}
	}
	if st := r.Status(); st.LateFlows != 0 {
		t.Errorf("late flows %d, want 0", st.LateFlows)
	}
}

func TestLateFlowIsEmittedAtOnceAndCounted(t *testing.T) {
	nodes := threeNodes(t, nil)
	r, base := startRelay(t, Options{Peers: addrs(nodes), MergeWindow: 50 * time.Millisecond})
	waitFor(t, "all peers connected", func() bool { return r.Status().NumConnectedNodes == 3 })
	fl := follow(t, base, "")
	t0 := time.Now()
	nodes[0].emit(testFlow(1, t0))
	fl.waitCount(t, 1)
	nodes[1].emit(testFlow(2, t0.Add(-time.Second)))
	gs := fl.waitCount(t, 2)
	if gs[1].port != 2 {
		t.Errorf("late flow not emitted: %v", gs)
	}
	if st := r.Status(); st.LateFlows != 1 {
		t.Errorf("late flows %d, want 1", st.LateFlows)
	}
}

func TestKilledNodeMarksAnswersPartialAndRejoins(t *testing.T) {
	nodes := threeNodes(t, nil)
	r, base := startRelay(t, Options{Peers: addrs(nodes), MergeWindow: 50 * time.Millisecond})
	waitFor(t, "all peers connected", func() bool { return r.Status().NumConnectedNodes == 3 })
	fl := follow(t, base, "")
	if h := fl.header.Get(flowquery.PartialHeader); h != "" {
		t.Errorf("a complete answer says partial: %q", h)
	}
	t0 := time.Now()
	for i, n := range nodes {
		n.emit(testFlow(i+1, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	fl.waitCount(t, 3)

	killed := nodes[2]
	killed.stop(t)
	waitFor(t, "node3 down", func() bool { return !nodeStatus(r, killed.addr).Connected })
	if ns := nodeStatus(r, killed.addr); ns.LastError == "" || ns.FlowsReceived != 1 || ns.NodeName != "node3" {
		t.Errorf("node3's status: %+v", ns)
	}
	st := r.Status()
	if st.NumUnavailableNodes != 1 || !slices.Equal(st.UnavailableNodes, []string{"node3"}) {
		t.Errorf("status: %d unavailable %v", st.NumUnavailableNodes, st.UnavailableNodes)
	}

	// The live stream goes on with the others.
	nodes[0].emit(testFlow(4, t0.Add(10*time.Millisecond)))
	nodes[1].emit(testFlow(5, t0.Add(11*time.Millisecond)))
	fl.waitCount(t, 5)

	// History answers are partial.
	gs, h, trailer := getFlows(t, base, "all=1")
	if len(gs) != 4 {
		t.Errorf("history from the two live nodes: got %d flows, want 4", len(gs))
	}
	if h.Get(flowquery.PartialHeader) != "node3" || trailer.Get(flowquery.PartialHeader) != "node3" {
		t.Errorf("partial header %q, trailer %q; want node3", h.Get(flowquery.PartialHeader), trailer.Get(flowquery.PartialHeader))
	}
	// So is a new live answer.
	fl2 := follow(t, base, "")
	if got := fl2.header.Get(flowquery.PartialHeader); got != "node3" {
		t.Errorf("new follow's partial header %q, want node3", got)
	}

	// Restarted on the same port, node3 rejoins the running stream.
	nodes[2] = startNode(t, "node3", killed.addr, nil, nil)
	waitFor(t, "node3 up", func() bool { return nodeStatus(r, killed.addr).Connected })
	waitFor(t, "node3 streaming again", func() bool { return nodes[2].c.Store().Followers() >= 2 })
	nodes[2].emit(testFlow(6, time.Now()))
	gs2 := fl.waitCount(t, 6)
	if last := gs2[len(gs2)-1]; last.node != "node3" || last.port != 6 {
		t.Errorf("after rejoining: %v", gs2)
	}
	fl2.waitCount(t, 1)
	if _, h, _ := getFlows(t, base, "all=1"); h.Get(flowquery.PartialHeader) != "" {
		t.Errorf("answer still partial after rejoin: %q", h.Get(flowquery.PartialHeader))
	}
}

func TestHistoryMergeHonoursFirstAndLastAcrossPeers(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	// Node k holds flows k+1, k+4, ... so that time order interleaves nodes.
	nodes := threeNodes(t, func(k int) []api.Flow {
		var fs []api.Flow
		for i := k; i < 30; i += 3 {
			fs = append(fs, testFlow(i+1, t0.Add(time.Duration(i)*time.Second)))
		}
		return fs
	})
	_, base := startRelay(t, Options{Peers: addrs(nodes)})
	seq := func(from, to int) []int {
		var s []int
		for i := from; i <= to; i++ {
			s = append(s, i)
		}
		return s
	}
	tests := []struct {
		name  string
		query string
		want  []int
	}{
		{"no bounds returns the last 20 across nodes", "", seq(11, 30)},
		{"last counts across nodes", "last=4", seq(27, 30)},
		{"first counts across nodes", "first=5", seq(1, 5)},
		{"all merges every node by time", "all=1", seq(1, 30)},
		{"since and until bound every node", "since=" + t0.Add(9*time.Second).Format(time.RFC3339) +
			"&until=" + t0.Add(13*time.Second).Format(time.RFC3339), seq(10, 14)},
		{"filters go to every node", "filter=" + url.QueryEscape("from:port=7") + "&filter=" + url.QueryEscape("from:port=8") + "&all=1", []int{7, 8}},
		{"first with a filter", "filter=" + url.QueryEscape("node=node2") + "&first=3", []int{2, 5, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, h, _ := getFlows(t, base, tt.query)
			var ports []int
			for _, g := range gs {
				ports = append(ports, g.port)
			}
			if !slices.Equal(ports, tt.want) {
				t.Errorf("got %v, want %v", ports, tt.want)
			}
			if p := h.Get(flowquery.PartialHeader); p != "" {
				t.Errorf("partial %q", p)
			}
		})
	}
}

func TestFollowWithLastReplaysTheLastAcrossPeersThenGoesLive(t *testing.T) {
	t0 := time.Now().Add(-time.Minute)
	nodes := threeNodes(t, func(k int) []api.Flow {
		var fs []api.Flow
		for i := k; i < 9; i += 3 {
			fs = append(fs, testFlow(i+1, t0.Add(time.Duration(i)*time.Second)))
		}
		return fs
	})
	_, base := startRelay(t, Options{Peers: addrs(nodes), MergeWindow: 20 * time.Millisecond})
	fl := follow(t, base, "last=4")
	fl.waitCount(t, 4)
	nodes[1].emit(testFlow(10, time.Now()))
	gs := fl.waitCount(t, 5)
	var ports []int
	for _, g := range gs {
		ports = append(ports, g.port)
	}
	if !slices.Equal(ports, []int{6, 7, 8, 9, 10}) {
		t.Errorf("got %v, want [6 7 8 9 10]", ports)
	}
}

func TestBadParametersAreRefusedLikeACollector(t *testing.T) {
	_, base := startRelay(t, Options{})
	for _, q := range []string{"last=abc", "last=1&first=1", "follow=1&first=2", "filter=bogus", "nope=1"} {
		resp, err := http.Get(base + "/api/v1/flows?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, resp.StatusCode)
		}
	}
}

func TestStatusAndHealthz(t *testing.T) {
	nodes := threeNodes(t, nil)
	r, base := startRelay(t, Options{Peers: addrs(nodes), Version: "v-test"})
	waitFor(t, "all peers connected", func() bool { return r.Status().NumConnectedNodes == 3 })
	resp, err := http.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "v-test" || len(st.Nodes) != 3 || st.Nodes[0].NodeName != "node1" || st.Nodes[0].Version != "test" {
		t.Errorf("status: %+v", st)
	}
	resp, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("healthz: %q", body)
	}
}
