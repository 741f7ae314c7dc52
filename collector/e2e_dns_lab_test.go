package collector_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
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
	"github.com/periscope-dev/periscope/enforcer/dnspolicy"
	"github.com/periscope-dev/periscope/enforcer/dnsproxy"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// dnsLab is the lab of the DNS connectivity suite: pods client and client2
// (namespace default), dns (kube-system, k8s-app=kube-dns) running dnsmasq
// with the suite's records, and, not declared to the collector (so world),
// web1..web3 serving TCP and silent, which takes DNS queries and never
// answers. The pods resolve through the dns pod (their resolv.conf).
type dnsLab struct {
	lab      *netlab.Lab
	pods     map[string]*netlab.Pod
	cfg      *collector.Config
	pinPath  string
	stateDir string
	node     *dnsNode
	sport    atomic.Uint32
	dnsmasq  *logBuffer
}

// dnsNode is one run of the collector, wired as `periscope collector` wires
// it: the DNS proxy a source, the FQDN cache naming flows and feeding the
// policy store, the store applying through the DNS part over the datapath.
type dnsNode struct {
	c     *collector.Collector
	dp    *datapath.Datapath
	dns   *dnspolicy.DNS
	store *policystore.Store

	cancel   context.CancelFunc
	done     chan error // the collector's Run
	dnsDone  chan error // the DNS part's Run
	stopOnce sync.Once
}

// shortTTL is short.example.com's TTL, the suite's expiring name.
const shortTTL = 2

func newDNSLab(t testing.TB, dnsmasqArgs ...string) *dnsLab {
	t.Helper()
	labtest.RequireRoot(t)
	for _, tool := range []string{"dnsmasq", "dig", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			labtest.SkipOrFail(t, tool+" is not installed (scripts/deps.sh installs it)")
		}
	}
	l := &dnsLab{lab: labtest.NewLab(t), pods: map[string]*netlab.Pod{}, stateDir: t.TempDir(), dnsmasq: &logBuffer{},
		pinPath: netlab.PinPath(t, "e2e-dns")}
	l.sport.Store(30000)
	l.cfg = &collector.Config{NodeName: "e2e-dns"}
	for _, d := range []struct {
		name, ns string
		labels   map[string]string
		declared bool
		audit    bool // the endpoint's policy in audit mode
	}{
		{"client", "default", map[string]string{"app": "client"}, true, false},
		{"client2", "default", map[string]string{"app": "client2"}, true, false},
		{"audited", "default", map[string]string{"app": "audited"}, true, true},
		{"dns", "kube-system", map[string]string{"k8s-app": "kube-dns"}, true, false},
		{"web1", "", nil, false, false},
		{"web2", "", nil, false, false},
		{"web3", "", nil, false, false},
		{"silent", "", nil, false, false},
	} {
		p, err := l.lab.AddPod(netlab.PodSpec{Name: d.name, Namespace: d.ns, Labels: d.labels})
		if err != nil {
			t.Fatal(err)
		}
		l.pods[d.name] = p
		if d.declared {
			l.cfg.Endpoints = append(l.cfg.Endpoints, collector.EndpointConfig{
				Name: d.name, Namespace: d.ns, Labels: d.labels, NetNS: p.NetNSName, Audit: d.audit})
		}
		if strings.HasPrefix(d.name, "web") {
			serveTCP(t, p, 80, 443)
		}
	}
	l.startDNSServer(t, dnsmasqArgs...)
	l.startSilentServer(t)
	for _, name := range []string{"client", "client2", "audited"} {
		l.resolvConf(t, l.pods[name])
	}
	t.Cleanup(func() {
		if _, err := os.Stat(l.pinPath); err == nil {
			t.Errorf("pin path %s left behind", l.pinPath)
			os.RemoveAll(l.pinPath)
		}
	})
	return l
}

// records are dnsmasq's: the suite's names and what they resolve to.
func (l *dnsLab) records() []string {
	w1, w2, w3 := l.pods["web1"], l.pods["web2"], l.pods["web3"]
	big := make([]string, 12)
	for i := range big {
		big[i] = `"` + strings.Repeat(string(rune('a'+i)), 250) + `"`
	}
	return []string{
		fmt.Sprintf("--host-record=api.example.com,%s,%s,300", w1.IPv4, w1.IPv6),
		fmt.Sprintf("--host-record=www.example.com,%s,300", w2.IPv4),
		fmt.Sprintf("--host-record=a.b.example.com,%s,300", w3.IPv4),
		fmt.Sprintf("--host-record=short.example.com,%s,%d", w3.IPv4, shortTTL),
		fmt.Sprintf("--host-record=edge.example.net,%s,300", w3.IPv4),
		"--cname=cdn.example.net,edge.example.net,300",
		fmt.Sprintf("--host-record=other.org,%s,300", w2.IPv4),
		"--txt-record=big.example.com," + strings.Join(big, ","),
		"--local=/example.com/", "--local=/example.net/", "--local=/other.org/",
	}
}

// serveTCP accepts (and closes) TCP connections on ports in the pod, on any
// of its addresses, until the test ends.
func serveTCP(t testing.TB, p *netlab.Pod, ports ...uint16) {
	t.Helper()
	for _, port := range ports {
		labtest.ServeTCP(t, p, port, nil)
	}
}

// startDNSServer runs dnsmasq in the dns pod, with the suite's records and
// extra arguments, until the test ends.
func (l *dnsLab) startDNSServer(t testing.TB, extra ...string) {
	t.Helper()
	p := l.pods["dns"]
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=" + p.IPv4.String(), "--listen-address=" + p.IPv6.String(), "--port=53",
		"--log-facility=-", "--cache-size=0", "--pid-file=", "--user=root", "--group=root"}, l.records()...)
	if _, bench := t.(*testing.B); !bench {
		args = append(args, "--log-queries") // a benchmark measures dnsmasq without its log
	}
	args = append(args, extra...)
	cmd := p.Command(ctx, "dnsmasq", args...)
	cmd.Stdout, cmd.Stderr = l.dnsmasq, l.dnsmasq
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", l.dnsmasq.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for dig(t, p, "+tries=1", "+timeout=1", "@"+p.IPv4.String(), "www.example.com").status != "NOERROR" {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer:\n%s", l.dnsmasq.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSilentServer takes DNS queries in the silent pod and never answers.
func (l *dnsLab) startSilentServer(t testing.TB) {
	t.Helper()
	var conns []*net.UDPConn
	err := l.pods["silent"].Do(func() error {
		for _, a := range []string{"[::]:53"} { // dual stack
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a)))
			if err != nil {
				return err
			}
			conns = append(conns, c)
			go func() {
				buf := make([]byte, 1500)
				for {
					if _, _, err := c.ReadFromUDP(buf); err != nil {
						return
					}
				}
			}()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("silent server: %v", err)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
}

// resolvConf makes the pod resolve through the dns pod: `ip netns exec`
// mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf.
func (l *dnsLab) resolvConf(t testing.TB, p *netlab.Pod) {
	t.Helper()
	dir := filepath.Join("/etc/netns", p.NetNSName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("nameserver %s\noptions timeout:2 attempts:1\n", l.pods["dns"].IPv4)
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
}

// start runs a node over the lab (adopting what a previous node pinned and
// kept) until the test ends or stop.
func (l *dnsLab) start(t testing.TB) *dnsNode {
	t.Helper()
	topo, err := collector.Resolve(l.cfg)
	if err != nil {
		t.Fatalf("resolve endpoints: %v", err)
	}
	dp, err := datapath.Load(datapath.Config{PinPath: l.pinPath, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Logf("close datapath: %v", err)
		}
	})
	redirects := datapath.NewRedirectOwners(dp)
	dns, err := dnspolicy.New(dnspolicy.Options{
		Redirects: redirects.Owner("dns"), PortFile: filepath.Join(l.stateDir, "dns-proxy.port"),
		Cache: fqdn.Options{StatePath: filepath.Join(l.stateDir, "fqdn.json"), GCInterval: 200 * time.Millisecond},
		Proxy: dnsproxy.Options{Timeout: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.NewAllocator(filepath.Join(l.stateDir, "identities.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{
		Topology: topo, Sources: []collector.Source{dp, dns.Proxy()}, Attacher: dp, Interfaces: dp.Interfaces,
		Listen: "127.0.0.1:0", RingSize: 1 << 16, Identities: ids, Names: dns.Cache(),
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := policystore.New(policystore.Options{Dir: filepath.Join(l.stateDir, "policies"),
		Applier: dns.Applier(dp), Endpoints: c.Registry(), Names: dns.Cache()})
	if err != nil {
		t.Fatalf("policy store: %v", err)
	}
	dns.Bind(store, c)
	ctx, cancel := context.WithCancel(context.Background())
	n := &dnsNode{c: c, dp: dp, dns: dns, store: store, cancel: cancel, done: make(chan error, 1), dnsDone: make(chan error, 1)}
	go func() { n.dnsDone <- dns.Run(ctx) }()
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		for _, p := range store.List() {
			if _, err := store.Delete(p.Kind, p.Namespace, p.Name); err != nil {
				t.Logf("delete policy %s: %v", p.Name, err)
			}
		}
		n.stop(t)
	})
	select {
	case <-c.Ready():
	case err := <-n.done:
		t.Fatalf("collector Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("collector not ready after 60s (verifying its programs takes 15-35 s on a loaded 2-core machine)")
	}
	l.node = n
	return n
}

// stop ends the node's runs (the cache saves its state); the datapath stays
// loaded until the test's cleanup, or until the test closes it (dp.Close).
func (n *dnsNode) stop(t testing.TB) {
	n.stopOnce.Do(func() {
		n.cancel()
		if err := <-n.done; err != nil {
			t.Errorf("collector Run: %v", err)
		}
		if err := <-n.dnsDone; err != nil {
			t.Errorf("DNS Run: %v", err)
		}
	})
}

// endpointID is a declared pod's endpoint id.
func (l *dnsLab) endpointID(t testing.TB, name string) uint32 {
	t.Helper()
	for _, e := range l.node.c.Registry().Endpoints() {
		if e.Name == name {
			return e.IfIndex
		}
	}
	t.Fatalf("no endpoint %s", name)
	return 0
}

// reset replaces every policy with yaml and empties the FQDN cache (the
// policy then admits no name's address).
func (l *dnsLab) reset(t testing.TB, yaml string) {
	t.Helper()
	n := l.node
	for _, p := range n.store.List() {
		if _, err := n.store.Delete(p.Kind, p.Namespace, p.Name); err != nil {
			t.Fatalf("delete %s: %v", p.Name, err)
		}
	}
	for _, name := range []string{"client", "client2", "audited", "dns"} {
		n.dns.Cache().Forget(l.endpointID(t, name))
	}
	if err := n.store.RefreshNames(); err != nil {
		t.Fatal(err)
	}
	if yaml != "" {
		if _, _, err := n.store.Apply("scenario.yaml", []byte(yaml)); err != nil {
			t.Fatalf("apply:\n%s\n%v", yaml, err)
		}
	}
}

// digResult is what dig printed.
type digResult struct {
	status  string   // NOERROR, NXDOMAIN, REFUSED, SERVFAIL; "" on a timeout
	answers []string // "name ttl IN type data" lines of the answer section
	took    time.Duration
	output  string
}

// addrs are the A and AAAA addresses of the answer.
func (r digResult) addrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range r.answers {
		f := strings.Fields(a)
		if len(f) == 5 && (f[3] == "A" || f[3] == "AAAA") {
			if ip, err := netip.ParseAddr(f[4]); err == nil {
				out = append(out, ip)
			}
		}
	}
	return out
}

// dig runs dig in the pod.
func dig(t testing.TB, p *netlab.Pod, args ...string) digResult {
	t.Helper()
	start := time.Now()
	out, _ := p.Command(context.Background(), "dig", args...).CombinedOutput()
	r := digResult{output: string(out), took: time.Since(start)}
	inAnswer := false
	for _, line := range strings.Split(r.output, "\n") {
		if i := strings.Index(line, "status: "); i >= 0 && strings.Contains(line, "->>HEADER<<-") {
			r.status = strings.TrimSuffix(strings.Fields(line[i+len("status: "):])[0], ",")
			r.answers = nil // a TCP retry's header starts over
		}
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, ";"):
			inAnswer = false
		case inAnswer:
			r.answers = append(r.answers, strings.Join(strings.Fields(line), " "))
		}
	}
	return r
}

// lookup asks the lab's DNS server from a pod: dig, one try; extra args
// (+tcp, AAAA, @server) go after the defaults.
func (l *dnsLab) lookup(t testing.TB, from, name string, extra ...string) digResult {
	t.Helper()
	args := append([]string{"+tries=1", "+timeout=3", "@" + l.pods["dns"].IPv4.String(), name}, extra...)
	return dig(t, l.pods[from], args...)
}

// getent resolves name in the pod through its resolv.conf (glibc).
func (l *dnsLab) getent(from, name string) ([]netip.Addr, error) {
	out, err := l.pods[from].Command(context.Background(), "getent", "ahostsv4", name).Output()
	if err != nil {
		return nil, fmt.Errorf("getent ahostsv4 %s: %w", name, err)
	}
	var addrs []netip.Addr
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if a, err := netip.ParseAddr(f[0]); err == nil && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, nil
}

// connect makes one TCP connection attempt from a pod to dst and reports
// whether it got through.
func (l *dnsLab) connect(from string, dst netip.AddrPort) (ok bool, src netip.AddrPort) {
	src = netip.AddrPortFrom(l.pods[from].Addr(dst.Addr().Is6()), uint16(l.sport.Add(1)))
	err := l.pods[from].Do(func() error {
		d := net.Dialer{Timeout: probeTimeout, LocalAddr: net.TCPAddrFromAddrPort(src)}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
	return err == nil, src
}

// flows waits (up to flowWait) for the records after seq that match, and
// returns them once the other veth's had time to come.
func (l *dnsLab) flows(seq uint64, match func(*api.Flow) bool) []api.Flow {
	collect := func() []api.Flow {
		var out []api.Flow
		_ = l.node.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
			if e.Seq > seq && match(&e.Flow) {
				out = append(out, e.Flow)
			}
			return nil
		})
		return out
	}
	deadline := time.Now().Add(flowWait)
	for time.Now().Before(deadline) {
		if fs := collect(); len(fs) > 0 {
			time.Sleep(flowSettle)
			return collect()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
