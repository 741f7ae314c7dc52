package dnsproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
)

// The lab: a client pod asks a server address (vip) that lives on the dns
// pod but is routed through the router pod. The router diverts port 53 to
// the proxy with TPROXY, which is what the datapath's redirect does on a
// node: the proxy sees queries addressed to a server that is not its own.
// Everything happens in namespaces the test made. The proxy runs as a child
// process inside the router's namespace (this test binary, re-executed), so
// every socket it opens, upstream ones included, is in that namespace.
type dnsLab struct {
	lab                  *netlab.Lab
	client, router, dnsP *netlab.Pod
	vip, silentVIP       netip.Addr // dnsmasq's address; one nobody answers on
	vip6                 netip.Addr // dnsmasq's IPv6 address, routed like vip
	dnsmasqPID           int        // the server's process (ip netns exec execs it)
}

// dnsmasqRecords are the names the lab's server knows.
func dnsmasqRecords(bigTXT string) []string {
	return []string{
		"--host-record=www.example.com,198.18.250.1,fd00:250::1,300",
		"--host-record=www2.example.com,198.18.250.2,60",
		"--host-record=target.example.net,198.18.250.3,120",
		"--cname=alias.example.com,target.example.net,30",
		"--host-record=evil.example.org,198.18.250.66,60",
		"--txt-record=big.example.com," + bigTXT,
		"--local=/example.com/",
	}
}

func bigTXT() string {
	parts := make([]string, 12)
	for i := range parts {
		parts[i] = `"` + strings.Repeat(string(rune('a'+i)), 250) + `"`
	}
	return strings.Join(parts, ",")
}

func newDNSLab(t testing.TB) *dnsLab {
	t.Helper()
	for _, tool := range []string{"dnsmasq", "dig", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			labtest.SkipOrFail(t, tool+" is not installed (scripts/deps.sh installs it)")
		}
	}
	lab := labtest.NewLab(t)
	l := &dnsLab{lab: lab}
	var err error
	for _, p := range []struct {
		name string
		dst  **netlab.Pod
	}{{"client", &l.client}, {"router", &l.router}, {"dns", &l.dnsP}} {
		if *p.dst, err = lab.AddPod(netlab.PodSpec{Name: p.name, Namespace: "default"}); err != nil {
			t.Fatal(err)
		}
	}
	// .254 and .253 of the lab's /24 are never a pod's (netlab stops at .251).
	base := lab.IPv4Net.Addr().As4()
	base[3] = 254
	l.vip = netip.AddrFrom4(base)
	base[3] = 253
	l.silentVIP = netip.AddrFrom4(base)
	for _, vip := range []netip.Addr{l.vip, l.silentVIP} {
		if err := l.dnsP.AddIPv4(vip); err != nil {
			t.Fatal(err)
		}
		l.run(t, l.client, "ip", "route", "add", vip.String()+"/32", "via", l.router.IPv4.String())
		l.run(t, l.router, "ip", "route", "add", vip.String()+"/32", "via", l.dnsP.IPv4.String())
	}
	// IPv6 likewise: ::fe of the lab's /64 is never a pod's.
	v6 := lab.IPv6Net.Addr().As16()
	v6[15] = 0xfe
	l.vip6 = netip.AddrFrom16(v6)
	l.run(t, l.dnsP, "ip", "-6", "addr", "add", l.vip6.String()+"/128", "dev", "eth0", "nodad")
	l.run(t, l.client, "ip", "-6", "route", "add", l.vip6.String()+"/128", "via", l.router.IPv6.String())
	l.run(t, l.router, "ip", "-6", "route", "add", l.vip6.String()+"/128", "via", l.dnsP.IPv6.String())
	l.run(t, l.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	l.run(t, l.router, "ip", "-6", "rule", "add", "fwmark", "1", "lookup", "100")
	l.run(t, l.router, "ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100")
	l.run(t, l.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.run(t, l.router, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
	l.run(t, l.router, "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0")
	// The router sends no redirects: the client must keep going through it.
	l.run(t, l.router, "sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
	l.run(t, l.router, "sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0")
	l.run(t, l.router, "ip", "rule", "add", "fwmark", "1", "lookup", "100")
	l.run(t, l.router, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")

	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=" + l.vip.String(), "--listen-address=" + l.dnsP.IPv4.String(),
		"--listen-address=" + l.vip6.String(), "--port=53", "--log-facility=-", "--cache-size=0",
		"--pid-file=", "--user=root", "--group=root"}, dnsmasqRecords(bigTXT())...)
	cmd := l.dnsP.Command(ctx, "dnsmasq", args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start dnsmasq: %v", err)
	}
	l.dnsmasqPID = cmd.Process.Pid
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", out.String())
		}
	})
	// The silent server reads queries and never answers.
	var silent *net.UDPConn
	err = l.dnsP.Do(func() (err error) {
		silent, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.silentVIP, 53)))
		return err
	})
	if err != nil {
		t.Fatalf("silent server: %v", err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	// Wait until dnsmasq answers directly (not through the router yet).
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := l.dig(t, l.dnsP, "+tries=1", "+timeout=1", "@"+l.vip.String(), "www.example.com", "A")
		if res.status == "NOERROR" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer: %+v\n%s", res, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

// divert makes the router hand port-53 traffic to the vips to the proxy:
// IPv4 to port4, IPv6 to port6 (0: none).
func (l *dnsLab) divert(t testing.TB, port4, port6 uint16) {
	t.Helper()
	for _, proto := range []string{"udp", "tcp"} {
		l.run(t, l.router, "iptables", "-t", "mangle", "-A", "PREROUTING", "-p", proto, "--dport", "53",
			"-j", "TPROXY", "--on-port", fmt.Sprint(port4), "--on-ip", "0.0.0.0", "--tproxy-mark", "1")
		if port6 != 0 {
			l.run(t, l.router, "ip6tables", "-t", "mangle", "-A", "PREROUTING", "-p", proto, "--dport", "53",
				"-j", "TPROXY", "--on-port", fmt.Sprint(port6), "--on-ip", "::", "--tproxy-mark", "1")
		}
	}
}

func (l *dnsLab) run(t testing.TB, p *netlab.Pod, name string, args ...string) string {
	t.Helper()
	out, err := p.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s %s: %v\n%s", p.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// digResult is what dig printed.
type digResult struct {
	status  string   // NOERROR, NXDOMAIN, REFUSED, SERVFAIL; "" on a timeout
	answers []string // "name ttl IN type data" lines of the answer section
	output  string
}

func (l *dnsLab) dig(t testing.TB, p *netlab.Pod, args ...string) digResult {
	t.Helper()
	out, _ := p.Command(context.Background(), "dig", args...).CombinedOutput()
	r := digResult{output: string(out)}
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

// childConfig is what the proxy child process runs with.
type childConfig struct {
	Listen    []netip.AddrPort
	Endpoints map[netip.Addr]api.Endpoint
	Rules     map[uint32][]dnsmatch.Rule
	Timeout   time.Duration
	StatePath string
	MinTTL    time.Duration
	// DiscardFlows counts the records instead of writing them (the
	// benchmark measures the proxy, not this test's JSON pipe).
	DiscardFlows bool
	// CPUProfile, when set, is where the child writes its CPU profile.
	CPUProfile string
}

// childLine is one line the child writes to stdout.
type childLine struct {
	Ready []netip.AddrPort `json:",omitempty"`
	Flow  *api.Flow        `json:",omitempty"`
	Stats *Stats           `json:",omitempty"`
}

const childEnv = "PERISCOPE_DNSPROXY_CHILD"

// childProxy is a proxy running in a pod's namespace.
type childProxy struct {
	addrs   []netip.AddrPort
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	records flowLog
	mu      sync.Mutex
	stats   Stats
	done    chan struct{}
}

func startChildProxy(t testing.TB, in *netlab.Pod, cfg childConfig) *childProxy {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := in.Command(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &childProxy{cmd: cmd, done: make(chan struct{})}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start proxy child: %v", err)
	}
	ready := make(chan []netip.AddrPort, 1)
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l childLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("proxy child wrote %q: %v", sc.Text(), err)
				continue
			}
			c.mu.Lock()
			switch {
			case l.Ready != nil:
				ready <- l.Ready
			case l.Flow != nil:
				c.records.emit(l.Flow)
			case l.Stats != nil:
				c.stats = *l.Stats
			}
			c.mu.Unlock()
		}
	}()
	select {
	case c.addrs = <-ready:
	case <-c.done:
		cmd.Wait()
		t.Fatal("the proxy child ended before it was ready")
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the proxy child is not ready after 20s")
	}
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop ends the child (it saves its cache) and waits for it.
func (c *childProxy) stop(t testing.TB) {
	if c.stdin == nil {
		return
	}
	c.stdin.Close()
	c.stdin = nil
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		t.Error("the proxy child did not stop within 20s")
	}
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("proxy child: %v", err)
	}
}

// waitFlow waits until a record matching ok arrived and returns it.
func (c *childProxy) waitFlow(t testing.TB, what string, ok func(*api.Flow) bool) api.Flow {
	t.Helper()
	return c.records.await(t, what, ok)
}

// flowLog keeps the records a proxy emits, for tests to wait for.
type flowLog struct {
	mu    sync.Mutex
	flows []api.Flow
}

func (l *flowLog) emit(f *api.Flow) {
	l.mu.Lock()
	l.flows = append(l.flows, *f)
	l.mu.Unlock()
}

// await returns the first record ok accepts, waiting up to 10 s for it.
func (l *flowLog) await(t testing.TB, what string, ok func(*api.Flow) bool) api.Flow {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		for i := range l.flows {
			if ok(&l.flows[i]) {
				f := l.flows[i]
				l.mu.Unlock()
				return f
			}
		}
		n := len(l.flows)
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no record of %s in %d records", what, n)
		}
	}
}

// dnsRecord matches an L7 DNS record of a query name, type and direction.
func dnsRecord(name string, typ api.L7FlowType, proto uint8) func(*api.Flow) bool {
	return func(f *api.Flow) bool {
		return f.L7 != nil && f.L7.DNS != nil && f.L7.Type == typ && f.L7.DNS.Query == name && f.L4.Protocol == proto
	}
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

func statePathIn(t testing.TB) string { return filepath.Join(t.TempDir(), "fqdn.json") }
