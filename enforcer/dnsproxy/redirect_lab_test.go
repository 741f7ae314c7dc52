package dnsproxy

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// redirectLab is a client pod, dnsmasq in a server pod, the datapath
// attached to both and the proxy on loopback, forwarding from the pod's own
// address with the redirect's mark.
type redirectLab struct {
	lab            *netlab.Lab
	client, server *netlab.Pod
	d              *datapath.Datapath
	px             *Proxy
	cache          *fqdn.Cache
	epID           uint32
	dnsmasqOut     *lockedBuffer
	dnsmasqPID     int
}

// newRedirectLab builds the lab and runs the proxy (emit gets its records)
// until the test ends; the redirect is not set yet (redirect does it).
// With logQueries dnsmasq logs each query with its source address.
func newRedirectLab(t testing.TB, logQueries bool, emit func(*api.Flow)) *redirectLab {
	t.Helper()
	for _, tool := range []string{"dnsmasq", "dig"} {
		if _, err := exec.LookPath(tool); err != nil {
			labtest.SkipOrFail(t, tool+" is not installed (scripts/deps.sh installs it)")
		}
	}
	lab := labtest.NewLab(t)
	client, err := lab.AddPod(netlab.PodSpec{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "dns"})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	dnsmasqOut := &lockedBuffer{}
	args := append([]string{"--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=" + server.IPv4.String(), "--listen-address=" + server.IPv6.String(), "--port=53",
		"--log-facility=-", "--cache-size=0", "--pid-file=", "--user=root", "--group=root"},
		dnsmasqRecords(bigTXT())...)
	if logQueries {
		args = append(args, "--log-queries")
	}
	dm := server.Command(ctx, "dnsmasq", args...)
	dm.Stdout, dm.Stderr = dnsmasqOut, dnsmasqOut
	if err := dm.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		dm.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dnsmasqOut.String())
		}
	})
	digger := &dnsLab{}
	deadline := time.Now().Add(10 * time.Second)
	for digger.dig(t, server, "+tries=1", "+timeout=1", "@"+server.IPv4.String(), "www.example.com").status != "NOERROR" {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer:\n%s", dnsmasqOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	pin := netlab.PinPath(t, "test-dnsproxy")
	d, err := datapath.Load(datapath.Config{PinPath: pin, ReportInterval: time.Hour, IdleTimeout: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
		os.RemoveAll(pin)
	})
	for _, p := range []*netlab.Pod{client, server} {
		if err := d.AttachInterface(p.HostVeth.Name); err != nil {
			t.Fatal(err)
		}
	}

	epID := uint32(client.HostVeth.Index)
	cache, err := fqdn.New(fqdn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tab := dnsmatch.NewTable()
	if err := tab.Replace(map[uint32][]dnsmatch.Rule{epID: {{Policy: testRef("default/client-dns"), Port: 53,
		Names: []dnsmatch.Selector{{MatchPattern: "*.example.com"}}}}}); err != nil {
		t.Fatal(err)
	}
	ep := api.Endpoint{ID: epID, PodName: "client", Namespace: "default"}
	px, err := New(Options{
		Listen:    []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("[::1]:0")},
		Endpoints: endpointMap{client.IPv4: ep, client.IPv6: ep},
		Policy:    tab, Cache: cache, Timeout: 2 * time.Second,
		FromClient: true, UpstreamMark: datapath.ProxyMarkUpstream,
	})
	if err != nil {
		t.Fatal(err)
	}
	if px.Addrs()[0].Port() != px.Addrs()[1].Port() {
		t.Fatalf("listen addresses of port 0 got ports %v, want one port", px.Addrs())
	}
	runDone := make(chan error, 1)
	pctx, pcancel := context.WithCancel(context.Background())
	go func() { runDone <- px.Run(pctx, emit) }()
	t.Cleanup(func() {
		pcancel()
		if err := <-runDone; err != nil {
			t.Errorf("proxy Run: %v", err)
		}
	})
	t.Cleanup(func() { _ = d.SetRedirects(nil) })
	return &redirectLab{lab: lab, client: client, server: server, d: d, px: px, cache: cache, epID: epID, dnsmasqOut: dnsmasqOut, dnsmasqPID: dm.Process.Pid}
}

// redirect steers (on) or stops steering the client's port 53 to the proxy.
func (l *redirectLab) redirect(t testing.TB, on bool) {
	t.Helper()
	if !on {
		l.redirectTo(t, 0)
		return
	}
	l.redirectTo(t, l.px.Addrs()[0].Port())
}

// redirectTo steers the client's port 53 to port on loopback (0: nowhere).
func (l *redirectLab) redirectTo(t testing.TB, port uint16) {
	t.Helper()
	var rs []datapath.Redirect
	if port != 0 {
		rs = []datapath.Redirect{
			{Endpoint: l.epID, Direction: datapath.RedirectEgress, Proto: unix.IPPROTO_UDP, Port: 53, ProxyPort: port},
			{Endpoint: l.epID, Direction: datapath.RedirectEgress, Proto: unix.IPPROTO_TCP, Port: 53, ProxyPort: port},
		}
	}
	if err := l.d.SetRedirects(rs); err != nil {
		t.Fatal(err)
	}
}

// TestProxyBehindTheDatapathRedirect: the datapath steers a pod's port-53
// traffic (to the server the pod asked, with no change to the pod) to the
// proxy on loopback; the proxy forwards from the pod's own address with the
// redirect's mark, and the server sees the pod.
func TestProxyBehindTheDatapathRedirect(t *testing.T) {
	var records flowLog
	l := newRedirectLab(t, true, records.emit)
	l.redirect(t, true)
	client, server, cache, d, epID, dnsmasqOut := l.client, l.server, l.cache, l.d, l.epID, l.dnsmasqOut
	digger := &dnsLab{}
	record := func(what string, ok func(*api.Flow) bool) api.Flow {
		t.Helper()
		return records.await(t, what, ok)
	}
	own0 := l.px.OwnTimes()
	for _, tc := range []struct {
		name   string
		server netip.Addr
		args   []string
		proto  uint8
		answer string
	}{
		{"UDP to the IPv4 server", server.IPv4, nil, api.ProtoUDP, "A 198.18.250.1"},
		{"TCP to the IPv4 server", server.IPv4, []string{"+tcp"}, api.ProtoTCP, "A 198.18.250.1"},
		{"UDP to the IPv6 server", server.IPv6, []string{"-t", "AAAA"}, api.ProtoUDP, "AAAA fd00:250::1"},
		{"TCP to the IPv6 server", server.IPv6, []string{"+tcp", "-t", "AAAA"}, api.ProtoTCP, "AAAA fd00:250::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"+tries=1", "+timeout=5", "@" + tc.server.String(), "www.example.com"}, tc.args...)
			r := digger.dig(t, client, args...)
			if r.status != "NOERROR" || len(r.answers) != 1 || !strings.HasSuffix(r.answers[0], tc.answer) {
				t.Fatalf("dig %v: %+v", args, r)
			}
			from := client.IPv4
			if tc.server.Is6() {
				from = client.IPv6
			}
			resp := record("the response", func(f *api.Flow) bool {
				return dnsRecord("www.example.com.", api.L7TypeResponse, tc.proto)(f) && f.IP.Source == tc.server
			})
			if resp.Verdict != api.VerdictForwarded || resp.IP.Destination != from {
				t.Errorf("response record %+v", resp)
			}
			if !strings.Contains(dnsmasqOut.String(), "from "+from.String()) {
				t.Errorf("dnsmasq never saw a query from the pod's own address %s:\n%s", from, dnsmasqOut.String())
			}
		})
	}
	// The proxy's own time of the four forwarded queries (UDP and TCP):
	// some, but far less than their timeout.
	if own := l.px.OwnTimes().Sub(own0); own.Total() != 4 || own.Quantile(1) >= time.Second {
		t.Errorf("own time of %d queries, the longest up to %v; want 4", own.Total(), own.Quantile(1))
	}
	t.Run("a denied name is REFUSED by the proxy, never reaching the server", func(t *testing.T) {
		r := digger.dig(t, client, "+tries=1", "+timeout=5", "@"+server.IPv4.String(), "evil.example.org")
		if r.status != "REFUSED" {
			t.Fatalf("dig: %+v", r)
		}
		req := record("the denied request", dnsRecord("evil.example.org.", api.L7TypeRequest, api.ProtoUDP))
		if req.Verdict != api.VerdictDropped || !slices.Equal(req.EgressDeniedBy, testRefs("default/client-dns")) {
			t.Errorf("denied record %+v", req)
		}
		if strings.Contains(dnsmasqOut.String(), "evil.example.org") {
			t.Error("the denied query reached the server")
		}
	})
	if got := cache.NamesOf(epID, netip.MustParseAddr("fd00:250::1")); !slices.Equal(got, []string{"www.example.com"}) {
		t.Errorf("cache names of fd00:250::1: %q", got)
	}
	if st, err := d.RedirectStats(); err != nil || st.Connections == 0 || st.Upstream == 0 || st.NoProxy != 0 {
		t.Errorf("redirect stats %+v (%v)", st, err)
	}
}

// TestRedirectPolicesAnExistingResolverSocket: a pod's UDP socket that
// asked the server straight before its DNS rules came (a resolver's
// long-lived socket) is steered to the proxy from its next query: the
// name the rules deny, answered before, is REFUSED now and recorded, and
// the allowed one is answered through the proxy.
func TestRedirectPolicesAnExistingResolverSocket(t *testing.T) {
	var records flowLog
	l := newRedirectLab(t, false, records.emit)
	c, err := l.client.DialUDP(context.Background(), netip.AddrPortFrom(l.server.IPv4, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(name string) string {
		t.Helper()
		q := mustPack(t, name, dns.TypeA)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("ask %s: %v", name, err)
		}
		var m dns.Msg
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("answer to %s: %v", name, err)
		}
		return dns.RcodeToString[m.Rcode]
	}
	// "*.example.com" does not cover example.com itself, which dnsmasq answers.
	if got := ask("example.com."); got != "NOERROR" {
		t.Fatalf("before the redirect, example.com: %s, want the server's NOERROR", got)
	}
	l.redirect(t, true)
	if got := ask("example.com."); got != "REFUSED" {
		t.Fatalf("after the redirect, the same socket's denied example.com: %s, want REFUSED", got)
	}
	if got := ask("www.example.com."); got != "NOERROR" {
		t.Fatalf("after the redirect, www.example.com: %s", got)
	}
	records.await(t, "example.com's denied request", func(f *api.Flow) bool {
		return dnsRecord("example.com.", api.L7TypeRequest, api.ProtoUDP)(f) && f.Verdict == api.VerdictDropped
	})
	records.await(t, "www.example.com's answer", func(f *api.Flow) bool {
		return dnsRecord("www.example.com.", api.L7TypeResponse, api.ProtoUDP)(f) && f.Verdict == api.VerdictForwarded
	})
}
