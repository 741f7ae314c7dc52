package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
)

// fakeAttacher records attach and detach calls.
type fakeAttacher struct {
	mu     sync.Mutex
	calls  []string
	failOn string
}

func (a *fakeAttacher) AttachInterface(ifname string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ifname == a.failOn {
		return errors.New("operation not permitted")
	}
	a.calls = append(a.calls, "attach "+ifname)
	return nil
}

func (a *fakeAttacher) DetachInterface(ifname string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, "detach "+ifname)
	return nil
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equalInts(a, b []int) bool { return slices.Equal(a, b) }

// cannedFlow n goes from frontend (port n) to backend, seen on frontend's veth.
func cannedFlow(n int) api.Flow {
	return api.Flow{
		Time:      t0.Add(time.Duration(n) * time.Second),
		Verdict:   api.VerdictForwarded,
		Type:      api.FlowTypeL3L4,
		Event:     api.EventStart,
		IP:        api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
		L4:        api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(n), DestinationPort: 8080},
		Interface: api.Interface{Index: 10},
	}
}

type testCollector struct {
	c        *Collector
	base     string
	src      *apitest.Source
	attacher *fakeAttacher
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

func startCollector(t *testing.T, n int) *testCollector {
	t.Helper()
	src := apitest.NewSource(nil, 0)
	for i := 1; i <= n; i++ {
		src.Canned = append(src.Canned, cannedFlow(i))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	att := &fakeAttacher{}
	c, err := New(Options{
		Topology: testTopology(),
		Sources:  []Source{src},
		Attacher: att,
		Listener: ln,
		RingSize: 100,
		Version:  "test",
		Stats:    func() DatapathStats { return DatapathStats{EventsRead: 7, EventsLost: 1, EventsEmitted: 6} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testCollector{c: c, src: src, attacher: att, cancel: cancel, done: make(chan error, 1)}
	go func() { tc.done <- c.Run(ctx) }()
	t.Cleanup(func() { tc.stop(t) })
	<-c.Ready()
	tc.base = "http://" + c.Addr().String()
	// The canned flows go through the pipeline before anything live.
	for c.Store().Seen() < uint64(n) {
		time.Sleep(time.Millisecond)
	}
	return tc
}

func (tc *testCollector) stop(t *testing.T) {
	t.Helper()
	if tc.stopped {
		return
	}
	tc.stopped = true
	tc.cancel()
	select {
	case err := <-tc.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// sourcePorts parses NDJSON flows and returns their source ports.
func sourcePorts(t *testing.T, body string) []int {
	t.Helper()
	var out []int
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if line == "" {
			continue
		}
		var f api.Flow
		if err := api.ParseJSON([]byte(line), &f); err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		out = append(out, int(f.L4.SourcePort))
	}
	return out
}

func TestFlowsEndpoint(t *testing.T) {
	tc := startCollector(t, 30)
	tests := []struct {
		name  string
		query string
		want  []int
	}{
		{"no bounds returns the last 20", "", seq(11, 30)},
		{"last", "?last=3", seq(28, 30)},
		{"first", "?first=2", seq(1, 2)},
		{"all", "?all=1", seq(1, 30)},
		{"since alone returns everything after it", "?since=" + t0.Add(25*time.Second).Format(time.RFC3339), seq(25, 30)},
		{"until with RFC 3339 nanoseconds", "?until=" + t0.Add(3*time.Second).Format(time.RFC3339Nano), seq(1, 3)},
		{"since and until", "?since=" + t0.Add(5*time.Second).Format(time.RFC3339) + "&until=" + t0.Add(7*time.Second).Format(time.RFC3339), seq(5, 7)},
		{"a filter", "?filter=from:port=7&all", []int{7}},
		{"repeated filters combine", "?filter=from:port=7&filter=to:port=9999", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, h := get(t, tc.base+"/api/v1/flows"+tt.query)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("content type %q", ct)
			}
			if got := sourcePorts(t, body); !equalInts(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFlowsAreEnriched(t *testing.T) {
	tc := startCollector(t, 1)
	_, body, _ := get(t, tc.base+"/api/v1/flows")
	var f api.Flow
	if err := api.ParseJSON([]byte(strings.TrimSpace(body)), &f); err != nil {
		t.Fatal(err)
	}
	if f.Source.PodName != "frontend-7d4" || f.Destination.PodName != "backend" ||
		f.NodeName != "node1" || f.TrafficDirection != api.TrafficDirectionEgress || f.Interface.Name != "veth-fe-h" {
		t.Errorf("not enriched: %s", body)
	}
}

func TestFlowsBadParams(t *testing.T) {
	tc := startCollector(t, 0)
	tests := []struct {
		query, want string
	}{
		{"?last=abc", `"last"`},
		{"?last=-1", `"last"`},
		{"?first=0", `"first"`},
		{"?last=1&first=1", `exclude each other`},
		{"?since=yesterday", `"since"`},
		{"?until=2025-13-01T00:00:00Z", `"until"`},
		{"?since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z", `before since`},
		{"?follow=maybe", `"follow"`},
		{"?follow=1&first=3", `cannot be combined with follow`},
		{"?filter=bogus=1", `unknown kind "bogus"`},
		{"?lsat=3", `"lsat": unknown parameter`},
		{"?last=1&last=2", `more than once`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, body, _ := get(t, tc.base+"/api/v1/flows"+tt.query)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", code)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not contain %q", body, tt.want)
			}
		})
	}
}

func TestHealthzAndStatus(t *testing.T) {
	tc := startCollector(t, 5)
	code, body, _ := get(t, tc.base+"/healthz")
	if code != http.StatusOK || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
	code, body, h := get(t, tc.base+"/api/v1/status")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("status: %d %s", code, h.Get("Content-Type"))
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"events_read": 7.0, "events_lost": 1.0, "events_emitted": 6.0,
		"flows_seen": 5.0, "flows_stored": 5.0, "node_name": "node1", "version": "test",
	} {
		if st[key] != want {
			t.Errorf("%s = %v, want %v", key, st[key], want)
		}
	}
	if _, ok := st["uptime_seconds"].(float64); !ok {
		t.Errorf("uptime_seconds missing: %s", body)
	}
	if ifs, _ := st["attached_interfaces"].([]any); len(ifs) != 3 {
		t.Errorf("attached_interfaces %v", st["attached_interfaces"])
	}
	if eps, _ := st["endpoints"].([]any); len(eps) != 2 {
		t.Errorf("endpoints %v", st["endpoints"])
	}
	if code, _, _ := get(t, tc.base+"/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}

// TestFollowStreams replays the last flows then streams live ones as they
// come, and ends when the collector stops.
func TestFollowStreams(t *testing.T) {
	tc := startCollector(t, 10)
	resp, err := http.Get(tc.base + "/api/v1/flows?follow=1&last=2&filter=to:port=8080")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() int {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		return sourcePorts(t, lines.Text())[0]
	}
	if a, b := next(), next(); a != 9 || b != 10 {
		t.Fatalf("replay %d %d, want 9 10", a, b)
	}
	for i := 11; i <= 15; i++ {
		f := cannedFlow(i)
		if i == 13 {
			f.L4.DestinationPort = 9 // filtered out
		}
		tc.src.Live <- f
	}
	for _, want := range []int{11, 12, 14, 15} {
		if got := next(); got != want {
			t.Fatalf("live flow %d, want %d", got, want)
		}
	}
	tc.stop(t)
	if lines.Scan() {
		t.Errorf("stream continued after stop: %q", lines.Text())
	}
}

func TestRunAttachesAndDetaches(t *testing.T) {
	tc := startCollector(t, 0)
	tc.stop(t)
	tc.attacher.mu.Lock()
	defer tc.attacher.mu.Unlock()
	want := []string{"attach veth-fe-h", "attach veth-be-h", "attach eth0", "detach eth0", "detach veth-be-h", "detach veth-fe-h"}
	if strings.Join(tc.attacher.calls, ",") != strings.Join(want, ",") {
		t.Errorf("calls %v, want %v", tc.attacher.calls, want)
	}
}

func TestRunFailsWhenAttachFails(t *testing.T) {
	att := &fakeAttacher{failOn: "veth-be-h"}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{&apitest.Source{}}, Attacher: att, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "attach to veth-be-h") {
		t.Fatalf("Run: %v", err)
	}
	if strings.Join(att.calls, ",") != "attach veth-fe-h,detach veth-fe-h" {
		t.Errorf("calls %v: the attached interface must be detached", att.calls)
	}
}

func TestNewNeedsASource(t *testing.T) {
	if _, err := New(Options{Topology: testTopology()}); err == nil {
		t.Error("New without a source succeeded")
	}
}

func TestFlowsWithRealFilterChips(t *testing.T) {
	src := &apitest.Source{}
	for i := 1; i <= 4; i++ {
		src.Canned = append(src.Canned, cannedFlow(i))
	}
	last := cannedFlow(5)
	last.IP.Source, last.IP.Destination = last.IP.Destination, last.IP.Source // backend → frontend
	src.Canned = append(src.Canned, last)
	c, err := New(Options{Topology: testTopology(), Sources: []Source{src}})
	if err != nil {
		t.Fatal(err)
	}
	var f api.Flow
	for i := range src.Canned {
		f = src.Canned[i]
		c.process(&f)
	}
	tests := []struct {
		query string
		code  int
		want  []int
	}{
		{"?all&filter=from:pod=backend", http.StatusOK, []int{5}},
		{"?all&filter=to:pod=backend", http.StatusOK, seq(1, 4)},
		{"?all&filter=from:label=app=frontend&filter=to:namespace=shop", http.StatusOK, seq(1, 4)},
		{"?last=2&filter=!from:pod=backend", http.StatusOK, seq(3, 4)},
		{"?filter=colour=blue", http.StatusBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/flows"+tt.query, nil))
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.code != http.StatusOK {
				if !strings.Contains(rec.Body.String(), `"filter"`) {
					t.Errorf("400 body does not name the parameter: %s", rec.Body)
				}
				return
			}
			if got := sourcePorts(t, rec.Body.String()); !equalInts(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
