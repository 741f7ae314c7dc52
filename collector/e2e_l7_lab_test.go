package collector_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
	"github.com/periscope-dev/periscope/proxy"
	"github.com/periscope-dev/periscope/proxy/envoy"
	"github.com/periscope-dev/periscope/proxy/envoy/envoytest"
)

// Ports the L7 lab's servers serve HTTP on: policy puts l7Port under L7
// rules; l7OtherPort stays plain.
const (
	l7Port      = 8080
	l7OtherPort = 8081
)

// seenRequest is a request as a lab server received it.
type seenRequest struct {
	Method, URI, Host string
	Header            http.Header
	Client            netip.Addr
}

// l7Lab is the connectivity suite's lab for L7 policy: client pods, server
// pods serving HTTP/1.1 and h2c, an outsider (world), the datapath, a
// collector whose sources are the datapath and Envoy's access logs, its
// policy store enforcing L7 rules through the supervised Envoy.
type l7Lab struct {
	pods  map[string]*netlab.Pod
	dp    *datapath.Datapath
	c     *collector.Collector
	store *policystore.Store
	proxy *proxy.Manager
	sport atomic.Uint32
	probe atomic.Uint64

	mu   sync.Mutex
	seen map[string][]seenRequest // by X-Probe
}

// l7LabOptions change the lab.
type l7LabOptions struct {
	envoy    envoy.Options
	sinks    []collector.Sink // the collector's
	ringSize int              // the collector's ring; 0: 1<<16
}

func newL7Lab(t testing.TB, opts l7LabOptions) *l7Lab {
	t.Helper()
	labtest.RequireRoot(t)
	opts.envoy.Binary = envoytest.Binary(t)
	l := &l7Lab{pods: map[string]*netlab.Pod{}, seen: map[string][]seenRequest{}}
	// Source ports below the pods' ephemeral ones, from a random start:
	// Envoy's TIME_WAIT sockets of an earlier run on the same lab
	// addresses outlive it (see the TIME_WAIT limit in docs/L7.md).
	l.sport.Store(uint32(rand.IntN(15000)))
	lab := newE2ELab(t)
	cfg := &collector.Config{NodeName: "e2e-l7"}
	var all []*netlab.Pod
	for _, d := range []struct {
		name     string
		labels   map[string]string
		declared bool
		audit    bool
	}{
		{"client", map[string]string{"app": "client"}, true, false},
		{"client2", map[string]string{"app": "client2"}, true, false},
		{"server", map[string]string{"app": "server"}, true, false},
		{"audited", map[string]string{"app": "audited"}, true, true},
		// Not endpoints (their addresses are world): the outsider's veth is
		// a host interface of the datapath, as a node's uplink is; the
		// stray's has no datapath at all.
		{"outsider", nil, false, false},
		{"stray", nil, false, false},
	} {
		ns := ""
		if d.declared {
			ns = "default"
		}
		p, err := lab.AddPod(netlab.PodSpec{Name: d.name, Namespace: ns, Labels: d.labels})
		if err != nil {
			t.Fatal(err)
		}
		l.pods[d.name] = p
		all = append(all, p)
		if d.declared {
			cfg.Endpoints = append(cfg.Endpoints, collector.EndpointConfig{Name: d.name, Namespace: ns, Labels: d.labels,
				NetNS: p.NetNSName, Audit: d.audit})
		}
		l.serveHTTP(t, p)
	}
	cfg.HostInterfaces = []string{l.pods["outsider"].HostVeth.Name}
	quietPods(t, lab, all...)

	topo, err := collector.Resolve(cfg)
	if err != nil {
		t.Fatalf("resolve endpoints: %v", err)
	}
	pin := netlab.PinPath(t, "e2e-l7")
	if l.dp, err = datapath.Load(datapath.Config{PinPath: pin, IdleTimeout: 2 * time.Second}); err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := l.dp.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
		if _, err := os.Stat(pin); !os.IsNotExist(err) {
			t.Errorf("pin path %s left behind", pin)
			os.RemoveAll(pin)
		}
	})
	level := slog.LevelWarn
	if os.Getenv("PERISCOPE_ENVOY_DEBUG") != "" {
		level, opts.envoy.LogLevel = slog.LevelDebug, "debug"
	}
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: level}))
	if l.proxy, err = proxy.New(proxy.Options{Datapath: l.dp, NodeID: "e2e-l7", Socket: filepath.Join(t.TempDir(), "envoy.sock"),
		Envoy: opts.envoy, ProxyPortBase: uint16(20000 + rand.IntN(9000)), ProxyPortCount: 100,
		Logger: logger}); err != nil {
		t.Fatal(err)
	}
	ids, err := identity.NewAllocator(filepath.Join(t.TempDir(), "identities.json"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]http.Handler{}
	if l.c, err = collector.New(collector.Options{Topology: topo, Sources: []collector.Source{l.dp, l.proxy.Source()},
		Attacher: l.dp, Listener: ln, Interfaces: l.dp.Interfaces, RingSize: cmp.Or(opts.ringSize, 1<<16), Identities: ids, Handlers: handlers,
		Sinks: opts.sinks, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	proxyDone := make(chan struct{})
	go func() {
		defer close(proxyDone)
		if err := l.proxy.Run(ctx, func() { close(ready) }); err != nil {
			t.Errorf("proxy: %v", err)
		}
	}()
	<-ready
	collectorDone := make(chan error, 1)
	go func() { collectorDone <- l.c.Run(ctx) }()
	// Before the datapath closes: no policy left (no pins), the collector
	// and Envoy stopped.
	t.Cleanup(func() {
		if l.store != nil {
			for _, p := range l.store.List() {
				if _, err := l.store.Delete(p.Kind, p.Namespace, p.Name); err != nil {
					t.Logf("delete policy %s: %v", p.Name, err)
				}
			}
		}
		cancel()
		<-proxyDone
		if err := <-collectorDone; err != nil {
			t.Errorf("collector: %v", err)
		}
	})
	select {
	case <-l.c.Ready():
	case err := <-collectorDone:
		t.Fatalf("collector: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("collector not ready after 10s")
	}
	if l.store, err = policystore.New(policystore.Options{Applier: l.dp, L7: l.proxy, Endpoints: l.c.Registry(), Logger: logger}); err != nil {
		t.Fatalf("policy store: %v", err)
	}
	return l
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// serveHTTP serves HTTP/1.1 and h2c on l7Port and l7OtherPort in p,
// recording every request by its X-Probe header; it answers 200 "ok".
func (l *l7Lab) serveHTTP(t testing.TB, p *netlab.Pod) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	for _, port := range []uint16{l7Port, l7OtherPort} {
		ln, err := p.ListenTCP(port)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ap, _ := netip.ParseAddrPort(r.RemoteAddr)
			l.mu.Lock()
			l.seen[r.Header.Get("X-Probe")] = append(l.seen[r.Header.Get("X-Probe")],
				seenRequest{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Client: ap.Addr().Unmap()})
			l.mu.Unlock()
			io.WriteString(w, "ok")
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}
}

func (l *l7Lab) serverSaw(probe string) []seenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen[probe])
}

func (l *l7Lab) addr(name string, v6 bool) netip.Addr { return l.pods[name].Addr(v6) }

// nextPort is a client source port of its own: below the pods' ephemeral
// ports, never one the pods' servers listen on.
func (l *l7Lab) nextPort() uint16 {
	for {
		p := uint16(1024 + l.sport.Add(1)%31000)
		if p != l7Port && p != l7OtherPort {
			return p
		}
	}
}

// l7Request is one HTTP request a probe sends.
type l7Request struct {
	method, target string   // the request line's; target "/" when empty
	host           string   // Host header; the server's address:port when empty
	headers        []string // "Name: value", in order (repeats kept)
	h2c            bool     // HTTP/2 with prior knowledge instead of a raw HTTP/1.1 request
}

// answer is what a probe got: an HTTP status, or none (the connection was
// dropped or reset).
type answer struct {
	status int
	body   string
	err    error
}

// send makes one fresh connection from pod from (source port sport; 0:
// the kernel's choice) to dst and sends req with header X-Probe: id.
func (l *l7Lab) send(from string, dst netip.AddrPort, sport uint16, id string, req l7Request) answer {
	src := l.addr(from, dst.Addr().Is6())
	var conn net.Conn
	err := l.pods[from].Do(func() error {
		d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: src.AsSlice(), Port: int(sport)}}
		var err error
		conn, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return answer{err: err}
	}
	defer conn.Close()
	host := req.host
	if host == "" {
		host = dst.String()
	}
	method, target := req.method, req.target
	if method == "" {
		method = "GET"
	}
	if target == "" {
		target = "/"
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if req.h2c {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		c := &http.Client{Transport: &http.Transport{Protocols: &protos,
			DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
		r, err := http.NewRequest(method, "http://"+host+target, nil)
		if err != nil {
			return answer{err: err}
		}
		r.Header.Set("X-Probe", id)
		for _, h := range req.headers {
			k, v, _ := strings.Cut(h, ":")
			r.Header.Add(k, strings.TrimSpace(v))
		}
		resp, err := c.Do(r)
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{status: resp.StatusCode, body: string(b)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Probe: %s\r\n", method, target, host, id)
	for _, h := range req.headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return answer{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(body)}
}

// l7Records returns the L7 records after store sequence seq of the
// connection from client (address and port).
func (l *l7Lab) l7Records(seq uint64, client netip.AddrPort) []api.Flow {
	var out []api.Flow
	_ = l.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
		f := &e.Flow
		if e.Seq <= seq || f.Type != api.FlowTypeL7 {
			return nil
		}
		src, dst := netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort), netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort)
		if f.IsReply && dst == client || !f.IsReply && src == client {
			out = append(out, *f)
		}
		return nil
	})
	return out
}

// kernelRecords returns the datapath's records after seq of the TCP
// connection from client to server.
func (l *l7Lab) kernelRecords(seq uint64, client, server netip.AddrPort) []api.Flow {
	var out []api.Flow
	_ = l.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
		f := &e.Flow
		if e.Seq > seq && f.Type != api.FlowTypeL7 && f.L4.Protocol == api.ProtoTCP &&
			netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort) == client && netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort) == server {
			out = append(out, *f)
		}
		return nil
	})
	return out
}
