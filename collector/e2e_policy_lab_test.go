package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/policyapi"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// Probe timing: a denied connection must fail within probeTimeout, with no
// retry; records of a probe are awaited at most flowWait.
const (
	probeTimeout = 400 * time.Millisecond
	flowWait     = 1500 * time.Millisecond
	flowSettle   = 60 * time.Millisecond
)

// Ports every target pod listens on.
var (
	labTCPPorts = []int{80, 443, 5432, 9000, 9005, 9010, 9011}
	labUDPPort  = 53
)

// policyNode is one collector run over the real datapath with a policy store.
type policyNode struct {
	c      *collector.Collector
	dp     *datapath.Datapath
	store  *policystore.Store
	base   string
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
}

// stop ends the collector cleanly; the test closes the datapath (or its
// Cleanup does).
func (n *policyNode) stop(t *testing.T) {
	t.Helper()
	n.stopOnce.Do(func() {
		n.cancel()
		if err := <-n.done; err != nil {
			t.Errorf("collector Run: %v", err)
		}
	})
}

// policyLab is the lab of the connectivity suite.
type policyLab struct {
	lab      *netlab.Lab
	pods     map[string]*netlab.Pod
	cfg      *collector.Config
	pinPath  string
	stateDir string
	node     *policyNode
	sport    atomic.Uint32
}

func newPolicyLab(t *testing.T) *policyLab {
	t.Helper()
	labtest.RequireRoot(t)
	pl := &policyLab{lab: newE2ELab(t), pods: map[string]*netlab.Pod{}, stateDir: t.TempDir(),
		pinPath: netlab.PinPath(t, "e2e-policy")}
	pl.sport.Store(20000)
	type podDef struct {
		name, ns string
		labels   map[string]string
		declared bool
		audit    bool
	}
	defs := []podDef{
		{"client", "default", map[string]string{"app": "client", "tier": "frontend"}, true, false},
		{"client2", "default", map[string]string{"app": "client2"}, true, false},
		{"server", "default", map[string]string{"app": "server", "tier": "backend"}, true, false},
		{"db", "other", map[string]string{"app": "db"}, true, false},
		{"audited", "default", map[string]string{"app": "audited"}, true, true},
		// Not declared to the collector: their addresses are world.
		{"outsider", "", nil, false, false},
		{"outsider2", "", nil, false, false},
		// Declared as another node's address: remote-node.
		{"node2", "", nil, false, false},
	}
	// The lab's bridge is the host's interface: the host endpoint, with the
	// node's labels, where host policies are enforced.
	pl.cfg = &collector.Config{NodeName: "e2e-policy", Namespaces: map[string]collector.NamespaceConfig{
		"default": {Labels: map[string]string{"team": "web"}},
		"other":   {Labels: map[string]string{"team": "data"}},
	}, HostInterfaces: []string{pl.lab.Bridge.Name}, NodeLabels: map[string]string{"node-access": "ssh"}}
	var all []*netlab.Pod
	for _, d := range defs {
		p, err := pl.lab.AddPod(netlab.PodSpec{Name: d.name, Namespace: d.ns, Labels: d.labels})
		if err != nil {
			t.Fatal(err)
		}
		pl.pods[d.name] = p
		all = append(all, p)
		if d.declared {
			pl.cfg.Endpoints = append(pl.cfg.Endpoints, collector.EndpointConfig{
				Name: d.name, Namespace: d.ns, Labels: d.labels, NetNS: p.NetNSName, Audit: d.audit})
		}
		startListeners(t, p)
	}
	n2 := pl.pods["node2"]
	pl.cfg.RemoteNodes = []string{n2.IPv4.String(), n2.IPv6.String()}
	startHostListeners(t, bridgeAddr(n2.IPv4), bridgeAddr(n2.IPv6))
	quietPods(t, pl.lab, all...)
	t.Cleanup(func() {
		if _, err := os.Stat(pl.pinPath); err == nil {
			t.Errorf("pin path %s left behind", pl.pinPath)
			os.RemoveAll(pl.pinPath)
		}
	})
	return pl
}

// startHostListeners serves, in the root namespace, TCP (accept and close)
// on labTCPPorts of the lab bridge's addresses: the host as a probe's
// destination.
func startHostListeners(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		for _, port := range labTCPPorts {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(a, uint16(port)).String())
			if err != nil {
				t.Fatalf("host listener: %v", err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
	}
}

// startListeners serves TCP (accept and close) on labTCPPorts and UDP echo
// on labUDPPort, IPv4 and IPv6, inside p.
func startListeners(t *testing.T, p *netlab.Pod) {
	t.Helper()
	var lns []io.Closer
	err := p.Do(func() error {
		for _, port := range labTCPPorts {
			ln, err := net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("[::]:%d", labUDPPort))
		if err != nil {
			return err
		}
		lns = append(lns, pc)
		go func() {
			buf := make([]byte, 1500)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], addr)
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatalf("listeners in %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		for _, l := range lns {
			l.Close()
		}
	})
}

// start loads the datapath (adopting pinned policy) and runs a collector
// with a policy store over it; the datapath is closed at the end of the
// test unless closeDP is called earlier.
func (pl *policyLab) start(t *testing.T) *policyNode {
	t.Helper()
	topo, err := collector.Resolve(pl.cfg)
	if err != nil {
		t.Fatalf("resolve endpoints: %v", err)
	}
	dp, err := datapath.Load(datapath.Config{PinPath: pl.pinPath, IdleTimeout: 2 * time.Second, HostDevices: pl.cfg.HostInterfaces})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Logf("close datapath: %v", err)
		}
	})
	ids, err := identity.NewAllocator(filepath.Join(pl.stateDir, "identities.json"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]http.Handler{}
	c, err := collector.New(collector.Options{
		Topology: topo, Sources: []collector.Source{dp}, Attacher: dp, Listener: ln, Interfaces: dp.Interfaces,
		RingSize: 1 << 16, Identities: ids, Handlers: handlers,
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := policystore.New(policystore.Options{
		Dir: filepath.Join(pl.stateDir, "policies"), Applier: dp, Endpoints: c.Registry()})
	if err != nil {
		t.Fatalf("policy store: %v", err)
	}
	for p, h := range store.Handlers() {
		handlers[p] = h
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &policyNode{c: c, dp: dp, store: store, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	// Before the datapath closes: no policy left in force (so no pins
	// left), and the collector stopped unless the test stopped it.
	t.Cleanup(func() {
		for _, p := range store.List() {
			if _, err := store.Delete(p.Kind, p.Namespace, p.Name); err != nil {
				t.Logf("delete policy %s: %v", p.Name, err)
			}
		}
		n.stopOnce.Do(func() {
			cancel()
			<-n.done
		})
	})
	select {
	case <-c.Ready():
	case err := <-n.done:
		t.Fatalf("collector Run: %v", err)
	case <-time.After(60 * time.Second): // a loaded machine is slow to verify programs
		t.Fatal("collector not ready after 60s")
	}
	n.base = "http://" + c.Addr().String()
	pl.node = n
	return n
}

// addr is a pod's address ("host" is the lab bridge's).
func (pl *policyLab) addr(t *testing.T, name string, v6 bool) netip.Addr {
	t.Helper()
	if name == "host" {
		p := pl.pods["client"]
		if v6 {
			return bridgeAddr(p.IPv6)
		}
		return bridgeAddr(p.IPv4)
	}
	p := pl.pods[name]
	if p == nil {
		t.Fatalf("no pod %q", name)
	}
	if v6 {
		return p.IPv6
	}
	return p.IPv4
}

// bridgeAddr is the lab bridge's address: the first of the pod's subnet.
func bridgeAddr(a netip.Addr) netip.Addr {
	b := a.AsSlice()
	b[len(b)-1] = 1
	out, _ := netip.AddrFromSlice(b)
	return out
}

// in runs fn in the pod's namespace ("host": the root namespace).
func (pl *policyLab) in(name string, fn func() error) error {
	if name == "host" {
		return fn()
	}
	return pl.pods[name].Do(fn)
}

// connect makes one connection attempt and reports whether it got through.
func (pl *policyLab) connect(t *testing.T, pr probe) (ok bool, src netip.Addr, sport uint16) {
	t.Helper()
	dst := pl.addr(t, pr.to, pr.v6)
	src = pl.addr(t, pr.from, pr.v6)
	switch pr.proto {
	case "icmp":
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		var n int
		_ = pl.in(pr.from, func() error {
			if pr.from == "host" {
				return errors.New("no ICMP probe from the host")
			}
			n, _ = pl.pods[pr.from].Ping(ctx, dst, 1)
			return nil
		})
		return n == 1, src, 0
	case "tcp":
		sport = uint16(pl.sport.Add(1))
		err := pl.in(pr.from, func() error {
			d := net.Dialer{Timeout: probeTimeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice(), Port: int(sport)}}
			c, err := d.Dial("tcp", netip.AddrPortFrom(dst, uint16(pr.port)).String())
			if err != nil {
				return err
			}
			return c.Close()
		})
		return err == nil, src, sport
	case "udp":
		sport = uint16(pl.sport.Add(1))
		err := pl.in(pr.from, func() error {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice(), Port: int(sport)},
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(pr.port))))
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(probeTimeout))
			if _, err := c.Write([]byte("periscope-probe")); err != nil {
				return err
			}
			buf := make([]byte, 64)
			_, err = c.Read(buf)
			return err
		})
		return err == nil, src, sport
	case "raw":
		return pl.sendRaw(t, pr, src, dst), src, 0
	}
	t.Fatalf("unknown probe protocol %q", pr.proto)
	return false, src, 0
}

// sendRaw sends one packet of IP protocol pr.port from a raw socket in
// pr.from to one in pr.to, and reports whether that socket read it.
func (pl *policyLab) sendRaw(t *testing.T, pr probe, src, dst netip.Addr) bool {
	t.Helper()
	network := fmt.Sprintf("ip4:%d", pr.port)
	if pr.v6 {
		network = fmt.Sprintf("ip6:%d", pr.port)
	}
	payload := fmt.Appendf(nil, "periscope-probe-%d", pl.sport.Add(1))
	var ln net.PacketConn
	if err := pl.in(pr.to, func() (err error) {
		ln, err = net.ListenPacket(network, dst.String())
		return err
	}); err != nil {
		t.Fatalf("%s: raw socket in %s: %v", pr, pr.to, err)
	}
	defer ln.Close()
	got := make(chan bool, 1)
	go func() {
		ln.SetReadDeadline(time.Now().Add(probeTimeout))
		buf := make([]byte, 2048)
		for {
			n, from, err := ln.ReadFrom(buf)
			if err != nil {
				got <- false
				return
			}
			if a, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP); ok && a.Unmap() == src && bytes.Contains(buf[:n], payload) {
				got <- true
				return
			}
		}
	}()
	if err := pl.in(pr.from, func() error {
		c, err := net.DialIP(network, &net.IPAddr{IP: src.AsSlice()}, &net.IPAddr{IP: dst.AsSlice()})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	}); err != nil {
		t.Fatalf("%s: send: %v", pr, err)
	}
	return <-got
}

// probeFlows returns the records (on every veth) of the connection a probe
// made after store sequence number seq.
func (pl *policyLab) probeFlows(pr probe, seq uint64, started time.Time, src netip.Addr, sport uint16, dst netip.Addr) []api.Flow {
	proto := map[string]uint8{"tcp": api.ProtoTCP, "udp": api.ProtoUDP, "raw": uint8(pr.port)}[pr.proto]
	if pr.proto == "icmp" {
		proto = api.ProtoICMPv4
		if pr.v6 {
			proto = api.ProtoICMPv6
		}
	}
	match := func() []api.Flow {
		var out []api.Flow
		_ = pl.node.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
			f := &e.Flow
			if e.Seq <= seq || f.L4.Protocol != proto || f.IP.Source != src || f.IP.Destination != dst {
				return nil
			}
			// An earlier probe's connection between the same addresses
			// (ICMP has no ports to tell them apart) may end, and be
			// reported, after this probe began.
			if f.StartTime.Before(started.Add(-clockSlack)) {
				return nil
			}
			if proto == api.ProtoTCP || proto == api.ProtoUDP {
				if f.L4.SourcePort != sport || f.L4.DestinationPort != uint16(pr.port) {
					return nil
				}
			}
			// The probe is an echo request: neighbour discovery between
			// the same addresses is another connection with its own verdict.
			if (proto == api.ProtoICMPv4 && f.L4.ICMPType != icmpv4EchoRequest) ||
				(proto == api.ProtoICMPv6 && f.L4.ICMPType != icmpv6EchoRequest) {
				return nil
			}
			out = append(out, *f)
			return nil
		})
		return out
	}
	deadline := time.Now().Add(flowWait)
	for time.Now().Before(deadline) {
		if fs := match(); len(fs) > 0 {
			time.Sleep(flowSettle) // the record of the other veth
			return match()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// ICMP echo request types, the probes' ICMP; clockSlack bounds how far the
// kernel's flow times (converted to wall time) may be off time.Now.
const (
	clockSlack        = 20 * time.Millisecond
	icmpv4EchoRequest = 8
	icmpv6EchoRequest = 128
)

// verdictOf sums a connection's records: DROPPED if any record dropped it,
// else AUDIT if any audited it, else FORWARDED; names are the union of the
// deciding policies of every record.
func verdictOf(fs []api.Flow) (api.Verdict, api.DropReason, []string) {
	v, reason := api.VerdictForwarded, api.DropReasonUnknown
	set := map[string]bool{}
	for _, f := range fs {
		switch {
		case f.Verdict == api.VerdictDropped:
			v, reason = api.VerdictDropped, f.DropReason
		case f.Verdict == api.VerdictAudit && v != api.VerdictDropped:
			v = api.VerdictAudit
			if reason == 0 {
				reason = f.DropReason
			}
		}
		for _, l := range [][]api.PolicyRef{f.IngressAllowedBy, f.EgressAllowedBy, f.IngressDeniedBy, f.EgressDeniedBy} {
			for _, n := range l {
				set[n.Ref()] = true
			}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return v, reason, names
}

// postPolicies applies YAML through the HTTP API.
func (n *policyNode) postPolicies(t *testing.T, yaml string) (int, policyapi.ApplyResult) {
	t.Helper()
	resp, err := http.Post(n.base+"/api/v1/policies", "application/yaml", strings.NewReader(yaml))
	if err != nil {
		t.Fatalf("POST policies: %v", err)
	}
	defer resp.Body.Close()
	var res policyapi.ApplyResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("POST policies: decode answer: %v", err)
	}
	return resp.StatusCode, res
}

// deleteAll removes every policy through the HTTP API.
func (n *policyNode) deleteAll(t *testing.T) {
	t.Helper()
	for _, p := range n.store.List() {
		ns := p.Namespace
		if ns == "" {
			ns = "-"
		}
		req, _ := http.NewRequest(http.MethodDelete, n.base+"/api/v1/policies/"+ns+"/"+p.Name, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("DELETE %s: %v", p.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("DELETE %s: %s: %s", p.Name, resp.Status, bytes.TrimSpace(body))
		}
	}
}

// check runs a probe and compares connectivity and records with its
// expectation; noFlows skips the records (no collector is running).
func (pl *policyLab) check(t *testing.T, pr probe, noFlows bool) {
	t.Helper()
	var seq uint64
	if !noFlows {
		seq = pl.node.c.Store().Seen()
	}
	started := time.Now()
	ok, src, sport := pl.connect(t, pr)
	wantOK := pr.want != api.VerdictDropped
	if ok != wantOK {
		t.Errorf("%s: connected=%v, want %v", pr, ok, wantOK)
	}
	if noFlows {
		return
	}
	fs := pl.probeFlows(pr, seq, started, src, sport, pl.addr(t, pr.to, pr.v6))
	if len(fs) == 0 {
		t.Errorf("%s: no flow record", pr)
		return
	}
	for _, f := range fs {
		for _, l := range [][]api.PolicyRef{f.IngressAllowedBy, f.EgressAllowedBy, f.IngressDeniedBy, f.EgressDeniedBy} {
			for _, p := range l {
				if p.Kind == "" || p.Revision == 0 || p.Name == "" {
					t.Errorf("%s: a deciding policy without Hubble's kind or revision: %+v", pr, p)
				}
			}
		}
	}
	v, reason, names := verdictOf(fs)
	want := slices.Clone(pr.names)
	sort.Strings(want)
	if want == nil {
		want = []string{}
	}
	if v != pr.want || (pr.want != api.VerdictForwarded && pr.reason != 0 && reason != pr.reason) || !slices.Equal(names, want) {
		t.Errorf("%s: verdict %v reason %d policies %v, want %v reason %d policies %v",
			pr, v, reason, names, pr.want, pr.reason, want)
	}
}

// probe is one connection attempt and what it must give.
type probe struct {
	from, to string
	proto    string // tcp, udp, icmp
	port     int
	v6       bool
	want     api.Verdict
	reason   api.DropReason
	names    []string
}

func (p probe) String() string {
	fam := "v4"
	if p.v6 {
		fam = "v6"
	}
	return fmt.Sprintf("%s -> %s %s/%d %s", p.from, p.to, p.proto, p.port, fam)
}
