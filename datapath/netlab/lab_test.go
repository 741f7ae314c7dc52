package netlab

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// newTestLab makes a lab with pods named names, closed by t.Cleanup.
func newTestLab(t testing.TB, names ...string) (*Lab, []*Pod) {
	t.Helper()
	lab := newLabForTest(t)
	var pods []*Pod
	for _, n := range names {
		p, err := lab.AddPod(PodSpec{Name: n, Namespace: "default", Labels: map[string]string{"app": n}})
		if err != nil {
			t.Fatalf("AddPod(%s): %v", n, err)
		}
		pods = append(pods, p)
	}
	return lab, pods
}

func TestPodsTalk(t *testing.T) {
	lab, pods := newTestLab(t, "client", "server")
	client, server := pods[0], pods[1]
	for _, v6 := range []bool{false, true} {
		dst := server.Addr(v6)
		t.Run("tcp to "+dst.String()+" echoes", func(t *testing.T) {
			ln, err := server.ListenTCP(0)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(c, c)
			}()
			port := netip.MustParseAddrPort(ln.Addr().String()).Port()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			c, err := client.DialTCP(ctx, netip.AddrPortFrom(dst, port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			assertEcho(t, c)
		})
		t.Run("udp to "+dst.String()+" echoes", func(t *testing.T) {
			srv, err := server.ListenUDP(0)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			go func() {
				buf := make([]byte, 64)
				n, from, err := srv.ReadFromUDPAddrPort(buf)
				if err == nil {
					srv.WriteToUDPAddrPort(buf[:n], from)
				}
			}()
			port := srv.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
			c, err := client.DialUDP(t.Context(), netip.AddrPortFrom(dst, port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			assertEcho(t, c)
		})
		t.Run("ping to "+dst.String()+" is answered", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if n, err := client.Ping(ctx, dst, 2); err != nil || n != 2 {
				t.Fatalf("Ping = %d, %v; want 2 replies", n, err)
			}
		})
	}
	t.Run("the host is reachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		for _, host := range []netip.Addr{lab.HostIPv4, lab.HostIPv6} {
			if _, err := client.Ping(ctx, host, 1); err != nil {
				t.Errorf("ping host %s: %v", host, err)
			}
		}
	})
	t.Run("addresses are in the lab's subnets", func(t *testing.T) {
		for _, p := range pods {
			if !lab.IPv4Net.Contains(p.IPv4) || !lab.IPv6Net.Contains(p.IPv6) {
				t.Errorf("pod %s: %s, %s outside %s, %s", p.Name, p.IPv4, p.IPv6, lab.IPv4Net, lab.IPv6Net)
			}
		}
	})
}

// assertEcho writes a message on c and expects it back.
func assertEcho(t *testing.T, c interface {
	io.ReadWriter
	SetDeadline(time.Time) error
}) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	want := "hello periscope"
	if _, err := c.Write([]byte(want)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != want {
		t.Fatalf("echo = %q, want %q", buf, want)
	}
}

func TestAFurtherAddressIsReachable(t *testing.T) {
	_, pods := newTestLab(t, "client", "server")
	client, server := pods[0], pods[1]
	b := server.IPv4.As4()
	b[3] = 200
	extra := netip.AddrFrom4(b)
	if err := server.AddIPv4(extra); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if n, err := client.Ping(ctx, extra, 1); err != nil || n != 1 {
		t.Errorf("ping %v, the server's further address: %d replies, %v", extra, n, err)
	}
	if err := server.AddIPv4(netip.MustParseAddr("fd00::1")); err == nil {
		t.Error("AddIPv4 took an IPv6 address")
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	requireRoot(t)
	lab, err := New(t.Context(), Options{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	p, err := lab.AddPod(PodSpec{Name: "only"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, name := range []string{lab.Bridge.Name, p.HostVeth.Name} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("link %s survived Close", name)
		}
	}
	if _, err := os.Stat(p.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s survived Close: %v", p.NetNSPath, err)
	}
	if _, err := lab.AddPod(PodSpec{Name: "late"}); err == nil {
		t.Error("AddPod after Close succeeded")
	}
}

func TestLabsDoNotCollide(t *testing.T) {
	a, _ := newTestLab(t, "x")
	b, _ := newTestLab(t, "x")
	if a.ID == b.ID || a.Bridge.Name == b.Bridge.Name {
		t.Errorf("labs share id %s / bridge %s", a.ID, a.Bridge.Name)
	}
	if a.IPv4Net.Overlaps(b.IPv4Net) || a.IPv6Net.Overlaps(b.IPv6Net) {
		t.Errorf("labs overlap: %s %s vs %s %s", a.IPv4Net, a.IPv6Net, b.IPv4Net, b.IPv6Net)
	}
	if err := Cleanup(NamePrefix); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, l := range []*Lab{a, b} {
		if _, err := netlink.LinkByName(l.Bridge.Name); err != nil {
			t.Errorf("Cleanup removed live lab %s's bridge: %v", l.ID, err)
		}
	}
}

func TestCleanupRemovesLeftovers(t *testing.T) {
	requireRoot(t)
	lab, err := New(t.Context(), Options{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	p, err := lab.AddPod(PodSpec{Name: "orphan"})
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: the slot is freed but nothing is removed.
	lab.slot.release()
	if err := Cleanup(lab.prefix()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if _, err := netlink.LinkByName(lab.Bridge.Name); err == nil {
		t.Error("bridge survived Cleanup")
	}
	if _, err := os.Stat(p.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns survived Cleanup: %v", err)
	}
}

func TestSubnetsAreInTheLabRanges(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("fd00::/8")
	seen := map[netip.Prefix]bool{}
	for i := range maxLabs {
		s4, s6 := subnet4(i), subnet6(i)
		if !v4.Overlaps(s4) || !v6.Overlaps(s6) || seen[s4] || seen[s6] {
			t.Fatalf("slot %d: %s %s out of range or reused", i, s4, s6)
		}
		seen[s4], seen[s6] = true, true
		for _, s := range []netip.Prefix{s4, s6} {
			if a := hostAddr(s, 250); !s.Contains(a) {
				t.Fatalf("slot %d: host address %s is outside %s", i, a, s)
			}
		}
		if idx, ok := slotOf(NamePrefix + slotID(i) + "-br"); !ok || idx != i {
			t.Fatalf("slotOf(%s) = %d, %v", slotID(i), idx, ok)
		}
	}
}
