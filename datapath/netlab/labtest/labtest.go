// Package labtest holds the test-only side of netlab: skipping (outside CI)
// or failing (in CI) a test that lacks root or a kernel feature, a lab
// that lives as long as a test, and a pod's TCP server for as long. It imports package testing, so only tests
// and test helpers may import it; the shipped binary must not link it.
package labtest

import (
	"context"
	"net"
	"os"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab"
)

// SkipOrFail skips the test outside CI and fails it in CI: a test that needs
// root or a kernel feature must run in CI.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if netlab.InCI() {
		tb.Fatalf("cannot run in CI (a skip is a failure there): %s", reason)
	}
	tb.Skipf("skipped outside CI: %s", reason)
}

// RequireRoot skips (outside CI) or fails (in CI) a test that needs root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
}

// NewLab builds a lab named after the test (which needs root: it skips, or
// fails in CI, without) and removes it when the test ends.
func NewLab(tb testing.TB) *netlab.Lab {
	tb.Helper()
	RequireRoot(tb)
	lab, err := netlab.New(context.Background(), netlab.Options{Name: tb.Name()})
	if err != nil {
		tb.Fatalf("lab: %v", err)
	}
	tb.Cleanup(func() {
		if err := lab.Close(); err != nil {
			tb.Errorf("close lab: %v", err)
		}
	})
	return lab
}

// ServeTCP has pod listen on port (any of its addresses) until the test
// ends, and hands each connection to handle in a goroutine of its own,
// closing it after; a nil handle only closes it.
func ServeTCP(tb testing.TB, pod *netlab.Pod, port uint16, handle func(net.Conn)) {
	tb.Helper()
	ln, err := pod.ListenTCP(port)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if handle != nil {
					handle(c)
				}
			}()
		}
	}()
}
