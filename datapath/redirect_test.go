package datapath

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/compile"
)

// tproxy is the smallest proxy the redirect expects: IP_TRANSPARENT TCP
// listeners and a UDP socket on 127.0.0.1 and ::1 at one port; each TCP
// connection is relayed to its original destination (the accepted socket's
// local address) from the client's address with SO_MARK
// ProxyMarkUpstream, and each datagram is answered from its original
// destination with "proxy saw <client>".
type tproxy struct {
	port     uint16
	lns      []net.Listener
	udp      []*net.UDPConn
	accepted atomic.Int64 // TCP connections
	received atomic.Int64 // UDP datagrams
	wg       sync.WaitGroup

	mu   sync.Mutex
	dsts []netip.AddrPort // original destinations of the TCP connections
}

// transparent sets IP_TRANSPARENT (and IPV6_TRANSPARENT) and, when mark is
// not 0, SO_MARK on a socket before it binds.
func transparent(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				if serr == nil && strings.HasPrefix(network, "udp") {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, 1)
				}
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				if serr == nil && strings.HasPrefix(network, "udp") {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1)
				}
			}
			if serr == nil && mark != 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
		})
		return errors.Join(err, serr)
	}
}

func startTproxy(t *testing.T) *tproxy {
	t.Helper()
	lc := net.ListenConfig{Control: transparent(0)}
	ctx := context.Background()
	for range 20 {
		p := &tproxy{}
		ln4, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("proxy listen: %v", err)
		}
		p.port = uint16(ln4.Addr().(*net.TCPAddr).Port)
		p.lns = append(p.lns, ln4)
		addr6 := fmt.Sprintf("[::1]:%d", p.port)
		addr4 := fmt.Sprintf("127.0.0.1:%d", p.port)
		ln6, err6 := lc.Listen(ctx, "tcp6", addr6)
		u4, erru4 := lc.ListenPacket(ctx, "udp4", addr4)
		u6, erru6 := lc.ListenPacket(ctx, "udp6", addr6)
		if err6 != nil || erru4 != nil || erru6 != nil {
			for _, c := range []io.Closer{ln4, ln6, u4, u6} {
				if c != nil && !isNilCloser(c) {
					c.Close()
				}
			}
			continue // the port is taken in another family: try another
		}
		p.lns = append(p.lns, ln6)
		p.udp = []*net.UDPConn{u4.(*net.UDPConn), u6.(*net.UDPConn)}
		for _, ln := range p.lns {
			p.wg.Go(func() { p.serveTCP(t, ln) })
		}
		for _, u := range p.udp {
			p.wg.Go(func() { p.serveUDP(u) })
		}
		t.Cleanup(p.stop)
		return p
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return nil
}

func isNilCloser(c io.Closer) bool {
	switch v := c.(type) {
	case net.Listener:
		return v == nil
	case net.PacketConn:
		return v == nil
	}
	return false
}

// stop closes the proxy's sockets: its port has no socket any more.
func (p *tproxy) stop() {
	for _, ln := range p.lns {
		ln.Close()
	}
	for _, u := range p.udp {
		u.Close()
	}
	p.wg.Wait()
}

func (p *tproxy) serveTCP(t *testing.T, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		dst := c.LocalAddr().(*net.TCPAddr).AddrPort()
		p.mu.Lock()
		p.dsts = append(p.dsts, dst)
		p.mu.Unlock()
		client := c.RemoteAddr().(*net.TCPAddr)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: client.IP}, Control: transparent(ProxyMarkUpstream), Timeout: 3 * time.Second}
		go func() {
			defer c.Close()
			up, err := d.Dial("tcp", dst.String())
			if err != nil {
				t.Logf("proxy: dial %s from %s: %v", dst, client.IP, err)
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, up)
		}()
	}
}

func (p *tproxy) serveUDP(u *net.UDPConn) {
	buf, oob := make([]byte, 1500), make([]byte, 256)
	for {
		_, oobn, _, from, err := u.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return
		}
		dst, ok := origDst(oob[:oobn])
		if !ok {
			continue
		}
		p.received.Add(1)
		// Answer from the original destination: a transparent socket bound there.
		lc := net.ListenConfig{Control: transparent(0)}
		rc, err := lc.ListenPacket(context.Background(), "udp", dst.String())
		if err != nil {
			continue
		}
		_, _ = rc.WriteTo([]byte("proxy saw "+from.Addr().Unmap().String()), net.UDPAddrFromAddrPort(from))
		rc.Close()
	}
}

// origDst reads IP_ORIGDSTADDR / IPV6_ORIGDSTADDR from a datagram's
// control messages.
func origDst(oob []byte) (netip.AddrPort, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR && len(m.Data) >= 8:
			a, _ := netip.AddrFromSlice(m.Data[4:8])
			return netip.AddrPortFrom(a, binary.BigEndian.Uint16(m.Data[2:4])), true
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR && len(m.Data) >= 24:
			a, _ := netip.AddrFromSlice(m.Data[8:24])
			return netip.AddrPortFrom(a, binary.BigEndian.Uint16(m.Data[2:4])), true
		}
	}
	return netip.AddrPort{}, false
}

// redirectLab is a client and a server pod on a lab bridge with the
// datapath attached to both; the server answers each TCP connection and
// each datagram with the address it came from.
type redirectLab struct {
	d              *Datapath
	client, server *netlab.Pod
	serverAccepts  atomic.Int64
}

// Ports of the redirect tests' server.
const (
	portRedirected = 8080 // ingress redirect of the server
	portDirect     = 8081 // never redirected
	portEgress     = 8082 // egress redirect of the client
	portUDP        = 5353 // ingress redirect of the server, UDP
)

func newRedirectLab(t *testing.T) *redirectLab {
	t.Helper()
	return newRedirectLabWith(t, loadForTest(t, Config{ReportInterval: time.Hour, IdleTimeout: time.Hour}))
}

func newRedirectLabWith(t *testing.T, d *Datapath) *redirectLab {
	t.Helper()
	lab := labtest.NewLab(t)
	l := &redirectLab{d: d}
	var err error
	if l.client, err = lab.AddPod(netlab.PodSpec{Name: "client"}); err != nil {
		t.Fatal(err)
	}
	if l.server, err = lab.AddPod(netlab.PodSpec{Name: "server"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*netlab.Pod{l.client, l.server} {
		if err := l.d.AttachInterface(p.HostVeth.Name); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = l.d.SetRedirects(nil) })
	for _, port := range []uint16{portRedirected, portDirect, portEgress} {
		labtest.ServeTCP(t, l.server, port, func(c net.Conn) {
			l.serverAccepts.Add(1)
			fmt.Fprintf(c, "server saw %s\n", c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
		})
	}
	u, err := l.server.ListenUDP(portUDP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := u.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = u.WriteToUDPAddrPort([]byte("server saw "+from.Addr().Unmap().String()), from)
		}
	}()
	return l
}

// ask connects from the client to the server's port and returns the
// server's answer.
func (l *redirectLab) ask(v6 bool, port uint16, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.client.DialTCP(ctx, netip.AddrPortFrom(l.server.Addr(v6), port))
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// askUDP sends a datagram from the client to the server's UDP port and
// returns the answer.
func (l *redirectLab) askUDP(v6 bool, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.client.DialUDP(ctx, netip.AddrPortFrom(l.server.Addr(v6), portUDP))
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("hello")); err != nil {
		return "", err
	}
	buf := make([]byte, 200)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func (l *redirectLab) redirects(proxyPort uint16) []Redirect {
	srv := []netip.Addr{l.server.IPv4, l.server.IPv6}
	return []Redirect{
		{Endpoint: uint32(l.server.HostVeth.Index), Addrs: srv, Direction: RedirectIngress, Proto: unix.IPPROTO_TCP, Port: portRedirected, ProxyPort: proxyPort},
		{Endpoint: uint32(l.client.HostVeth.Index), Direction: RedirectEgress, Proto: unix.IPPROTO_TCP, Port: portEgress, ProxyPort: proxyPort},
		{Endpoint: uint32(l.server.HostVeth.Index), Addrs: srv, Direction: RedirectIngress, Proto: unix.IPPROTO_UDP, Port: portUDP, ProxyPort: proxyPort},
	}
}

// TestRedirectSteersConnectionsToTheProxy: connections to a redirected
// (endpoint, port) reach the proxy's transparent socket, which sees their
// original destination and connects there from the client's address: the
// server sees the real client. Unredirected ports never touch the proxy.
// Both families, ingress and egress redirects, TCP and UDP.
func TestRedirectSteersConnectionsToTheProxy(t *testing.T) {
	l := newRedirectLab(t)
	p := startTproxy(t)
	if err := l.d.SetRedirects(l.redirects(p.port)); err != nil {
		t.Fatal(err)
	}
	for _, v6 := range []bool{false, true} {
		client, server := l.client.Addr(v6), l.server.Addr(v6)
		want := "server saw " + client.String()
		for _, tc := range []struct {
			name    string
			port    uint16
			proxied bool
		}{
			{"ingress redirect of the server's port", portRedirected, true},
			{"egress redirect of the client's port", portEgress, true},
			{"a port without a redirect", portDirect, false},
		} {
			t.Run(fmt.Sprintf("%s IPv6=%v", tc.name, v6), func(t *testing.T) {
				before := p.accepted.Load()
				got, err := l.ask(v6, tc.port, 5*time.Second)
				if err != nil || got != want {
					t.Fatalf("answer %q (%v), want %q", got, err, want)
				}
				n := p.accepted.Load() - before
				if tc.proxied && n != 1 || !tc.proxied && n != 0 {
					t.Fatalf("the proxy accepted %d connections, proxied: %v", n, tc.proxied)
				}
				if tc.proxied {
					p.mu.Lock()
					dst := p.dsts[len(p.dsts)-1]
					p.mu.Unlock()
					if dst != netip.AddrPortFrom(server, tc.port) {
						t.Fatalf("the proxy saw original destination %v, want %v", dst, netip.AddrPortFrom(server, tc.port))
					}
				}
			})
		}
		t.Run(fmt.Sprintf("UDP ingress redirect IPv6=%v", v6), func(t *testing.T) {
			before := p.received.Load()
			got, err := l.askUDP(v6, 5*time.Second)
			if want := "proxy saw " + client.String(); err != nil || got != want {
				t.Fatalf("answer %q (%v), want %q", got, err, want)
			}
			if n := p.received.Load() - before; n != 1 {
				t.Fatalf("the proxy received %d datagrams, want 1", n)
			}
		})
	}
	st, err := l.d.RedirectStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Connections != 6 || st.Upstream != 4 || st.NoProxy != 0 {
		t.Errorf("stats %+v, want 6 connections steered (4 TCP, 2 UDP), 4 upstream, none without proxy", st)
	}
}

// TestRedirectFailsClosedAndStops: with the proxy gone, connections to a
// redirected port fail and never reach the server (counted); once the
// redirect is removed they go direct again.
func TestRedirectFailsClosedAndStops(t *testing.T) {
	l := newRedirectLab(t)
	p := startTproxy(t)
	if err := l.d.SetRedirects(l.redirects(p.port)); err != nil {
		t.Fatal(err)
	}
	if got, err := l.ask(false, portRedirected, 5*time.Second); err != nil || p.accepted.Load() != 1 {
		t.Fatalf("through the proxy: %q (%v), accepted %d", got, err, p.accepted.Load())
	}
	p.stop()
	before := l.serverAccepts.Load()
	for _, v6 := range []bool{false, true} {
		if got, err := l.ask(v6, portRedirected, 700*time.Millisecond); err == nil {
			t.Fatalf("IPv6=%v: with the proxy down the connection succeeded: %q", v6, got)
		}
		if got, err := l.askUDP(v6, 300*time.Millisecond); err == nil {
			t.Fatalf("IPv6=%v: with the proxy down a datagram was answered: %q", v6, got)
		}
	}
	if n := l.serverAccepts.Load() - before; n != 0 {
		t.Fatalf("the server accepted %d connections with the proxy down: sent direct", n)
	}
	if st, err := l.d.RedirectStats(); err != nil || st.NoProxy == 0 {
		t.Fatalf("stats %+v (%v): no packet counted as dropped for want of a proxy", st, err)
	}
	if got, err := l.ask(false, portDirect, 5*time.Second); err != nil || got != "server saw "+l.client.IPv4.String() {
		t.Fatalf("a port without redirect with the proxy down: %q (%v)", got, err)
	}

	if err := l.d.SetRedirects(nil); err != nil {
		t.Fatal(err)
	}
	for _, v6 := range []bool{false, true} {
		want := "server saw " + l.client.Addr(v6).String()
		if got, err := l.ask(v6, portRedirected, 5*time.Second); err != nil || got != want {
			t.Fatalf("IPv6=%v: redirect removed: %q (%v), want %q", v6, got, err, want)
		}
		if got, err := l.askUDP(v6, 5*time.Second); err != nil || got != want {
			t.Fatalf("IPv6=%v: UDP redirect removed: %q (%v), want %q", v6, got, err, want)
		}
	}
}

// TestRedirectComesAfterPolicy: a connection L3/L4 policy drops is
// dropped, never redirected; one it allows is.
func TestRedirectComesAfterPolicy(t *testing.T) {
	l := newRedirectLab(t)
	p := startTproxy(t)
	if err := l.d.SetRedirects(l.redirects(p.port)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.d.ApplyPolicy(nil) })
	ep := func(pod *netlab.Pod, identity uint32, app string) compile.Endpoint {
		return compile.Endpoint{ID: uint32(pod.HostVeth.Index), Identity: identity, Namespace: "default",
			Labels: []string{"k8s:app=" + app}, IPs: []netip.Addr{pod.IPv4, pod.IPv6}}
	}
	for _, tc := range []struct {
		allow   uint16
		proxied bool
	}{{portDirect, false}, {portRedirected, true}} {
		c, err := compile.Compile(compile.Input{Policies: localPolicies(tc.allow),
			Endpoints: []compile.Endpoint{ep(l.client, 1500, "client"), ep(l.server, 1600, "server")}})
		if err != nil {
			t.Fatal(err)
		}
		applyOK(t, l.d, c)
		before := p.accepted.Load()
		_, err = l.ask(false, portRedirected, 700*time.Millisecond)
		if tc.proxied != (err == nil) || (p.accepted.Load() > before) != tc.proxied {
			t.Fatalf("policy allows port %d: connection error %v, proxy accepted %d, want proxied %v",
				tc.allow, err, p.accepted.Load()-before, tc.proxied)
		}
	}
}

// TestRedirectIsKeptAndAdoptedAcrossARestart: with a policy in force, a
// collector that stops leaves the redirect in force (programs attached,
// the redirect map pinned), and the next Load adopts it.
func TestRedirectIsKeptAndAdoptedAcrossARestart(t *testing.T) {
	labtest.RequireRoot(t)
	cfg := Config{PinPath: netlab.PinPath(t, "test-redirect"),
		Logger: quietLogger, ReportInterval: time.Hour, IdleTimeout: time.Hour}
	t.Cleanup(func() { _ = os.RemoveAll(cfg.PinPath) })
	d1, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d1.Close() })
	l := newRedirectLabWith(t, d1)
	p := startTproxy(t)
	if err := d1.SetRedirects(l.redirects(p.port)); err != nil {
		t.Fatal(err)
	}
	c, err := compile.Compile(compile.Input{Policies: localPolicies(portRedirected), Endpoints: []compile.Endpoint{
		{ID: uint32(l.client.HostVeth.Index), Identity: 1500, Namespace: "default", Labels: []string{"k8s:app=client"}, IPs: []netip.Addr{l.client.IPv4}},
		{ID: uint32(l.server.HostVeth.Index), Identity: 1600, Namespace: "default", Labels: []string{"k8s:app=server"}, IPs: []netip.Addr{l.server.IPv4}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, d1, c)
	proxied := func(when string) {
		t.Helper()
		before := p.accepted.Load()
		if got, err := l.ask(false, portRedirected, 5*time.Second); err != nil || p.accepted.Load() != before+1 {
			t.Fatalf("%s: %q (%v), proxy accepted %d", when, got, err, p.accepted.Load()-before)
		}
	}
	proxied("first run")
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	proxied("no collector")
	d2, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d2.SetRedirects(nil)
		_ = d2.ApplyPolicy(nil)
		if err := d2.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	for _, pod := range []*netlab.Pod{l.client, l.server} {
		if err := d2.AttachInterface(pod.HostVeth.Name); err != nil {
			t.Fatal(err)
		}
	}
	proxied("adopted by the next run")
	if err := d2.SetRedirects(nil); err != nil {
		t.Fatal(err)
	}
	before := p.accepted.Load()
	if _, err := l.ask(false, portRedirected, 5*time.Second); err != nil || p.accepted.Load() != before {
		t.Fatalf("redirect removed by the next run: %v, proxy accepted %d", err, p.accepted.Load()-before)
	}
}

// TestRedirectUpdatesFailNoConnection: while the redirect table is
// replaced again and again (another redirect added and removed), every
// connection to a redirect that stays goes through the proxy, and every
// one to a port without redirect goes direct.
func TestRedirectUpdatesFailNoConnection(t *testing.T) {
	l := newRedirectLab(t)
	p := startTproxy(t)
	base := l.redirects(p.port)[:1] // the server's port 8080
	extra := append(slices.Clone(base), Redirect{Endpoint: uint32(l.client.HostVeth.Index), Direction: RedirectEgress,
		Proto: unix.IPPROTO_TCP, Port: portEgress, ProxyPort: p.port})
	if err := l.d.SetRedirects(base); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var asked, failed, proxiedAsks atomic.Int64
	want := "server saw " + l.client.IPv4.String()
	for _, port := range []uint16{portRedirected, portDirect} {
		wg.Go(func() {
			for ctx.Err() == nil {
				asked.Add(1)
				if port == portRedirected {
					proxiedAsks.Add(1)
				}
				if got, err := l.ask(false, port, 5*time.Second); err != nil || got != want {
					failed.Add(1)
					t.Errorf("port %d during updates: %q (%v)", port, got, err)
				}
			}
		})
	}
	for i := range 200 {
		rs := base
		if i%2 == 0 {
			rs = extra
		}
		if err := l.d.SetRedirects(rs); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	if asked.Load() < 10 || failed.Load() != 0 {
		t.Fatalf("%d of %d connections failed", failed.Load(), asked.Load())
	}
	if p.accepted.Load() != proxiedAsks.Load() {
		t.Fatalf("the proxy accepted %d connections, %d were made to the redirected port", p.accepted.Load(), proxiedAsks.Load())
	}
}

// TestRedirectTakesOverAnExistingUDPFlow: a UDP flow that began before its
// port was redirected (a resolver's long-lived socket, say) goes to the
// proxy from its next datagram, as a new one would: a datagram carries no
// connection state the proxy would miss, and a flow that went on direct
// would escape the proxy's policy. Removing the redirect sends the same
// socket's next datagram direct again. Ingress and egress redirects, both
// families.
func TestRedirectTakesOverAnExistingUDPFlow(t *testing.T) {
	l := newRedirectLab(t)
	p := startTproxy(t)
	for _, tc := range []struct {
		name     string
		redirect func(v6 bool) Redirect
	}{
		{"ingress redirect of the server's port", func(bool) Redirect {
			return Redirect{Endpoint: uint32(l.server.HostVeth.Index), Addrs: []netip.Addr{l.server.IPv4, l.server.IPv6},
				Direction: RedirectIngress, Proto: unix.IPPROTO_UDP, Port: portUDP, ProxyPort: p.port}
		}},
		{"egress redirect of the client's port", func(bool) Redirect {
			return Redirect{Endpoint: uint32(l.client.HostVeth.Index), Direction: RedirectEgress,
				Proto: unix.IPPROTO_UDP, Port: portUDP, ProxyPort: p.port}
		}},
	} {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s IPv6=%v", tc.name, v6), func(t *testing.T) {
				c, err := l.client.DialUDP(context.Background(), netip.AddrPortFrom(l.server.Addr(v6), portUDP))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				t.Cleanup(func() { _ = l.d.SetRedirects(nil) })
				ask := func(want string) {
					t.Helper()
					before := p.received.Load()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write([]byte("hello")); err != nil {
						t.Fatal(err)
					}
					buf := make([]byte, 200)
					n, err := c.Read(buf)
					if got := string(buf[:n]); err != nil || got != want {
						t.Fatalf("answer %q (%v), want %q", got, err, want)
					}
					proxied := strings.HasPrefix(want, "proxy")
					if n := p.received.Load() - before; proxied && n != 1 || !proxied && n != 0 {
						t.Fatalf("the proxy received %d datagrams, proxied: %v", n, proxied)
					}
				}
				client := l.client.Addr(v6).String()
				ask("server saw " + client)
				if err := l.d.SetRedirects([]Redirect{tc.redirect(v6)}); err != nil {
					t.Fatal(err)
				}
				ask("proxy saw " + client)
				ask("proxy saw " + client)
				if err := l.d.SetRedirects(nil); err != nil {
					t.Fatal(err)
				}
				ask("server saw " + client)
			})
		}
	}
}

// TestRedirectEndsAnEstablishedTCPConnectionItCannotTake: a TCP connection
// the client made before its egress port was redirected cannot be moved
// into the proxy; going on direct it would escape the proxy's policy
// (DNS over TCP and rules.dns), so the redirect's revision ends it,
// counted as a bypass, as a SYN of the next connection goes to the proxy.
func TestRedirectEndsAnEstablishedTCPConnectionItCannotTake(t *testing.T) {
	const portEcho = 8083
	l := newRedirectLab(t)
	p := startTproxy(t)
	labtest.ServeTCP(t, l.server, portEcho, func(c net.Conn) {
		for sc := bufio.NewScanner(c); sc.Scan(); {
			fmt.Fprintf(c, "echo %s\n", sc.Text())
		}
	})
	c, err := compile.Compile(compile.Input{Policies: localPolicies(portEcho), Endpoints: []compile.Endpoint{
		{ID: uint32(l.client.HostVeth.Index), Identity: 1500, Namespace: "default", Labels: []string{"k8s:app=client"}, IPs: []netip.Addr{l.client.IPv4, l.client.IPv6}},
		{ID: uint32(l.server.HostVeth.Index), Identity: 1600, Namespace: "default", Labels: []string{"k8s:app=server"}, IPs: []netip.Addr{l.server.IPv4, l.server.IPv6}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, l.d, c)
	t.Cleanup(func() { _ = l.d.ApplyPolicy(nil) })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := l.client.DialTCP(ctx, netip.AddrPortFrom(l.server.IPv4, portEcho))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(line string, timeout time.Duration) (string, error) {
		_ = conn.SetDeadline(time.Now().Add(timeout))
		if _, err := fmt.Fprintln(conn, line); err != nil {
			return "", err
		}
		got, err := r.ReadString('\n')
		return strings.TrimSpace(got), err
	}
	if got, err := say("one", 5*time.Second); err != nil || got != "echo one" {
		t.Fatalf("before the redirect: %q (%v)", got, err)
	}
	before, err := l.d.RedirectStats()
	if err != nil {
		t.Fatal(err)
	}
	rev := l.d.PolicyRevision()
	if err := l.d.SetRedirects([]Redirect{{Endpoint: uint32(l.client.HostVeth.Index), Direction: RedirectEgress,
		Proto: unix.IPPROTO_TCP, Port: portEcho, ProxyPort: p.port}}); err != nil {
		t.Fatal(err)
	}
	if l.d.PolicyRevision() == rev {
		t.Fatal("adding an egress TCP redirect did not apply the policy again")
	}
	if got, err := say("two", 700*time.Millisecond); err == nil {
		t.Fatalf("the connection made before the redirect still goes direct: %q", got)
	}
	after, err := l.d.RedirectStats()
	if err != nil {
		t.Fatal(err)
	}
	if after.Bypass <= before.Bypass {
		t.Errorf("bypass count %d, was %d: the connection's end was not counted", after.Bypass, before.Bypass)
	}
	accepted := p.accepted.Load()
	conn2, err := l.client.DialTCP(ctx, netip.AddrPortFrom(l.server.IPv4, portEcho))
	if err != nil {
		t.Fatalf("a new connection after the redirect: %v", err)
	}
	defer conn2.Close()
	for deadline := time.Now().Add(5 * time.Second); p.accepted.Load() == accepted; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the proxy accepted no new connection: the one after the redirect went elsewhere")
		}
	}
	// The same redirect again adds nothing: no new revision.
	rev = l.d.PolicyRevision()
	if err := l.d.SetRedirects(l.d.Redirects()); err != nil {
		t.Fatal(err)
	}
	if l.d.PolicyRevision() != rev {
		t.Error("setting the same redirects again applied the policy again")
	}
}
