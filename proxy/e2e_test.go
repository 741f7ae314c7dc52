package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/accesslog"
	"github.com/periscope-dev/periscope/proxy/envoy"
	"github.com/periscope-dev/periscope/proxy/envoy/envoytest"
	"github.com/periscope-dev/periscope/proxy/xds"
)

// Ports of the test server.
const (
	portHTTP   = 8080 // redirected to Envoy (ingress of the server)
	portDirect = 8081 // never redirected
)

// l7Lab is a client and a server pod, the datapath on both, the server's
// port 8080 redirected to a supervised Envoy, and the L7 records of the
// access logs collected.
type l7Lab struct {
	d              *datapath.Datapath
	m              *Manager
	lab            *netlab.Lab
	client, server *netlab.Pod
	serverConns    atomic.Int64 // connections the HTTP server accepted
	// countOnly: the L7 records are counted (counted), not kept; a
	// benchmark's, so that keeping them costs nothing.
	countOnly atomic.Bool
	counted   atomic.Int64
	registry  *collector.Registry
	// ownTimes are Envoy's own times of the exchanges, while a benchmark
	// collects them.
	ownTimes proxyTimes

	mu      sync.Mutex
	records []api.Flow
}

func newL7Lab(t testing.TB, eo envoy.Options) *l7Lab {
	t.Helper()
	eo.Binary = envoytest.Binary(t)
	lab := labtest.NewLab(t)
	pin := netlab.PinPath(t, "test-proxy")
	d, err := datapath.Load(datapath.Config{PinPath: pin, Logger: slog.New(slog.DiscardHandler), ReportInterval: time.Hour})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
	})
	l := &l7Lab{d: d, lab: lab}
	if l.client, err = lab.AddPod(netlab.PodSpec{Name: "client"}); err != nil {
		t.Fatal(err)
	}
	if l.server, err = lab.AddPod(netlab.PodSpec{Name: "server"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*netlab.Pod{l.client, l.server} {
		if err := d.AttachInterface(p.HostVeth.Name); err != nil {
			t.Fatal(err)
		}
	}
	l.serveHTTP(t)
	topo := &collector.Topology{NodeName: "test-node"}
	for _, p := range []*netlab.Pod{l.client, l.server} {
		topo.Endpoints = append(topo.Endpoints, collector.ResolvedEndpoint{
			Config:      collector.EndpointConfig{Name: p.Name, Labels: map[string]string{"app": p.Name}},
			HostIfIndex: uint32(p.HostVeth.Index), HostIfName: p.HostVeth.Name, IPs: []netip.Addr{p.IPv4, p.IPv6}})
	}
	if l.registry, err = collector.NewRegistry(topo); err != nil {
		t.Fatal(err)
	}

	level := slog.LevelWarn
	if os.Getenv("PERISCOPE_ENVOY_DEBUG") != "" {
		level, eo.LogLevel = slog.LevelDebug, "debug"
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	base := uint16(30000 + rand.IntN(20000))
	l.m, err = New(Options{Datapath: d, NodeID: "test-node", Socket: t.TempDir() + "/envoy.sock", Envoy: eo,
		ProxyPortBase: base, ProxyPortCount: 50, Logger: logger,
		AccessLog: accesslog.Options{ProxyTime: l.ownTimes.observe}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.m.Run(ctx, func() { close(ready) }); err != nil {
			t.Errorf("proxy: %v", err)
		}
	}()
	go func() {
		_ = l.m.Source().Run(ctx, func(f *api.Flow) {
			if l.countOnly.Load() {
				l.counted.Add(1)
				return
			}
			l.mu.Lock()
			l.records = append(l.records, *f)
			l.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	if err := l.m.SetRedirects(ctx, []Redirect{l.redirect()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.SetRedirects(nil) })
	return l
}

func (l *l7Lab) redirect() Redirect {
	return Redirect{Endpoint: uint32(l.server.HostVeth.Index), Addrs: []netip.Addr{l.server.IPv4, l.server.IPv6},
		Direction: datapath.RedirectIngress, Port: portHTTP}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// serveHTTP runs an HTTP/1.1 and h2c server in the server pod on both
// ports; it answers "client=<address it sees>" and sets a cookie.
func (l *l7Lab) serveHTTP(t testing.TB) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	for _, port := range []uint16{portHTTP, portDirect} {
		ln, err := l.server.ListenTCP(port)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{
			Protocols: &protos,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ap, _ := netip.ParseAddrPort(r.RemoteAddr)
				w.Header().Set("Set-Cookie", "session=secret")
				w.Header().Set("Content-Type", "text/plain")
				fmt.Fprintf(w, "client=%s", ap.Addr().Unmap())
			}),
			ConnState: func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					l.serverConns.Add(1)
				}
			},
		}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}
}

// httpClient speaks from the client pod: HTTP/1.1, or h2c with prior
// knowledge; every request on a connection of its own when fresh.
func (l *l7Lab) httpClient(h2c, fresh bool) *http.Client {
	var protos http.Protocols
	if h2c {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Protocols:         &protos,
		DisableKeepAlives: fresh,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return l.client.DialTCP(ctx, netip.MustParseAddrPort(addr))
		},
	}}
}

func (l *l7Lab) get(c *http.Client, v6 bool, port uint16, path string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+netip.AddrPortFrom(l.server.Addr(v6), port).String()+path, nil)
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Traceparent", "00-"+traceIDOf(path)+"-00f067aa0ba902b7-01")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func (l *l7Lab) recordCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

// waitRecords waits until the records of n answered requests (a REQUEST
// and a RESPONSE each) arrived and returns them; fails when more arrive
// within a short while after.
func (l *l7Lab) waitRecords(t *testing.T, n int) []api.Flow {
	t.Helper()
	n *= 2
	deadline := time.Now().Add(15 * time.Second)
	for l.recordCount() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Envoy flushes every 100ms: an extra entry would be here by now.
	time.Sleep(600 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.records) != n {
		t.Fatalf("%d L7 records, want %d", len(l.records), n)
	}
	return append([]api.Flow(nil), l.records...)
}

// TestEnvoyL7 runs the real Envoy behind the datapath's redirect: every
// request to the redirected port becomes exactly one L7 record with the
// right attribution while the server sees the real client; h2c works; an
// unredirected port never touches Envoy; a rejected configuration is
// counted; Envoy killed mid-traffic is restarted and re-served, and
// meanwhile the redirected port fails closed.
func TestEnvoyL7(t *testing.T) {
	l := newL7Lab(t, envoy.Options{MinBackoff: 3 * time.Second, MaxBackoff: 3 * time.Second})
	want := 0
	for _, tc := range []struct {
		name      string
		v6, h2c   bool
		fresh     bool
		requests  int
		protocol  string
		redirects bool
	}{
		{"HTTP/1.1 over IPv4, a connection per request", false, false, true, 10, "HTTP/1.1", true},
		{"HTTP/1.1 over IPv6, keep-alive", true, false, false, 10, "HTTP/1.1", true},
		{"h2c over IPv4", false, true, false, 10, "HTTP/2", true},
		{"h2c over IPv6", true, true, false, 5, "HTTP/2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := l.httpClient(tc.h2c, tc.fresh)
			client := l.client.Addr(tc.v6)
			for i := range tc.requests {
				body, err := l.get(c, tc.v6, portHTTP, fmt.Sprintf("/items/%d?q=1", i))
				if err != nil || body != "client="+client.String() {
					t.Fatalf("request %d: %q (%v), want the server to see %s", i, body, err, client)
				}
			}
			want += tc.requests
			recs := l.waitRecords(t, want)
			requests := 0
			for _, f := range recs[2*(want-tc.requests):] {
				checkRecord(t, f, l, tc.v6, tc.protocol)
				if f.L7 != nil && f.L7.Type == api.L7TypeRequest {
					requests++
				}
			}
			if requests != tc.requests {
				t.Errorf("%d REQUEST records for %d requests, want one each and a RESPONSE each", requests, tc.requests)
			}
		})
	}
	t.Run("an unredirected port never touches Envoy", func(t *testing.T) {
		before, _ := l.d.RedirectStats()
		for _, v6 := range []bool{false, true} {
			body, err := l.get(l.httpClient(false, true), v6, portDirect, "/direct")
			if err != nil || body != "client="+l.client.Addr(v6).String() {
				t.Fatalf("direct request: %q (%v)", body, err)
			}
		}
		l.waitRecords(t, want)
		if after, _ := l.d.RedirectStats(); after.Connections != before.Connections {
			t.Fatalf("the datapath steered %d connections of an unredirected port", after.Connections-before.Connections)
		}
	})
	t.Run("a configuration Envoy rejects is counted as a NACK", func(t *testing.T) {
		before := l.m.Stats().NACKs
		bad := &xds.Snapshot{Version: "bad-1", Listeners: []*listener.Listener{{Name: "bad"}}} // no address
		if err := l.m.XDS().Set(context.Background(), bad); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for l.m.Stats().NACKs == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if l.m.Stats().NACKs == before {
			t.Fatal("no NACK counted")
		}
		// The good configuration back, as a new version.
		if err := l.m.SetRedirects(context.Background(), []Redirect{l.redirect()}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.get(l.httpClient(false, true), false, portHTTP, "/after-nack"); err != nil {
			t.Fatal(err)
		}
		want++
		l.waitRecords(t, want)
	})
	t.Run("Envoy killed mid-traffic: fail closed, then restarted and re-served", func(t *testing.T) {
		sup := l.m.Supervisor()
		starts := sup.Starts()
		// Traffic on a kept-alive connection when Envoy dies: it is reset.
		c := l.httpClient(false, false)
		if _, err := l.get(c, false, portHTTP, "/before-kill"); err != nil {
			t.Fatal(err)
		}
		want++
		l.waitRecords(t, want)
		if err := syscall.Kill(sup.PID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for sup.PID() != 0 && sup.Starts() == starts {
			time.Sleep(10 * time.Millisecond)
		}
		// Down for the 3s backoff: the redirected port refuses, never direct
		// (the kept-alive connection is reset, the client's retry on a new
		// one waits for its SYN to be answered).
		conns := l.serverConns.Load()
		c.Timeout = 700 * time.Millisecond
		if body, err := l.get(c, false, portHTTP, "/while-down"); err == nil {
			t.Fatalf("a kept-alive connection served %q with Envoy down", body)
		}
		fresh := l.httpClient(false, true)
		fresh.Timeout = 700 * time.Millisecond
		if body, err := l.get(fresh, true, portHTTP, "/while-down"); err == nil {
			t.Fatalf("a new connection served %q with Envoy down", body)
		}
		if sup.Starts() != starts {
			t.Fatalf("Envoy restarted within its backoff: the check above proves nothing")
		}
		if n := l.serverConns.Load() - conns; n != 0 {
			t.Fatalf("the server accepted %d connections with Envoy down: sent direct", n)
		}
		// Back: the new Envoy gets the same configuration over ADS.
		deadline := time.Now().Add(30 * time.Second)
		var err error
		for time.Now().Before(deadline) {
			if _, err = l.get(l.httpClient(false, true), false, portHTTP, "/after-restart"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("no request served after the restart: %v", err)
		}
		if sup.Starts() != starts+1 {
			t.Fatalf("Envoy started %d times, want one restart", sup.Starts()-starts)
		}
		want++
		l.waitRecords(t, want)
	})
}

// checkRecord checks one record of a GET of the server's redirected port:
// as Hubble's, a REQUEST from the client to the server, or a RESPONSE from
// the server back to the client.
func checkRecord(t *testing.T, f api.Flow, l *l7Lab, v6 bool, protocol string) {
	t.Helper()
	if f.Type != api.FlowTypeL7 || f.L7 == nil || f.L7.HTTP == nil {
		t.Fatalf("record %+v is not an HTTP L7 record", f)
	}
	h := f.L7.HTTP
	server := netip.AddrPortFrom(l.server.Addr(v6), portHTTP)
	response := f.L7.Type == api.L7TypeResponse
	if !response && (f.L7.Type != api.L7TypeRequest || h.Code != 0 || f.L7.LatencyNs != 0) ||
		response && (h.Code != 200 || f.L7.LatencyNs == 0) ||
		h.Method != "GET" || h.Protocol != protocol || !strings.HasPrefix(h.URL, "http://"+server.String()+"/items/") {
		t.Errorf("L7 %+v HTTP %+v, want a REQUEST GET %s/items/... over %s, or its RESPONSE 200 with a latency", f.L7, h, server, protocol)
	}
	srcAddr, srcPort, dstAddr, dstPort := f.IP.Source, f.L4.SourcePort, f.IP.Destination, f.L4.DestinationPort
	if response {
		srcAddr, srcPort, dstAddr, dstPort = dstAddr, dstPort, srcAddr, srcPort
	}
	if srcAddr != l.client.Addr(v6) || dstAddr != server.Addr() || dstPort != portHTTP ||
		srcPort == 0 || f.Verdict != api.VerdictForwarded || f.IsReply != response {
		t.Errorf("record %v:%d -> %v:%d reply %v verdict %v, want %v -> %v forwarded (the response the other way)", f.IP.Source, f.L4.SourcePort,
			f.IP.Destination, f.L4.DestinationPort, f.IsReply, f.Verdict, l.client.Addr(v6), server)
	}
	if f.Interface.Index != uint32(l.server.HostVeth.Index) || f.TrafficDirection != api.TrafficDirectionIngress {
		t.Errorf("record of endpoint %d direction %v, want the server's (%d) ingress", f.Interface.Index,
			f.TrafficDirection, l.server.HostVeth.Index)
	}
	// The collector's enrichment, by IP and by the redirect's endpoint; it
	// keeps the direction the record carries.
	l.registry.Enrich(&f)
	client, srv := f.Source, f.Destination
	if response {
		client, srv = srv, client
	}
	if client.PodName != "client" || srv.PodName != "server" || srv.Identity == 0 ||
		f.TrafficDirection != api.TrafficDirectionIngress || f.Interface.Name != l.server.HostVeth.Name {
		t.Errorf("enriched: %s -> %s (identity %d) direction %v at %q, want client and server, ingress at %s",
			f.Source.PodName, f.Destination.PodName, srv.Identity, f.TrafficDirection, f.Interface.Name, l.server.HostVeth.Name)
	}
	got := map[string]string{}
	for _, hd := range h.Headers {
		got[hd.Key] = hd.Value
	}
	if !response && got["authorization"] != "HUBBLE_REDACTED" || response && (got["set-cookie"] != "HUBBLE_REDACTED" || got["content-type"] != "text/plain") {
		t.Errorf("headers %v: want authorization (request) and set-cookie (response) redacted, content-type kept", got)
	}
	// Both records carry the request's trace (its traceparent header).
	path := strings.TrimPrefix(h.URL, "http://"+server.String())
	if f.L7.TraceID != traceIDOf(path) {
		t.Errorf("%v record of %s: trace ID %q, want %q", f.L7.Type, path, f.L7.TraceID, traceIDOf(path))
	}
}

// traceIDOf is the trace ID of get's request of path: its traceparent's.
func traceIDOf(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:16])
}
