package netlab

import (
	"context"
	"os"
	"testing"
)

// The exported versions of these live in package labtest, which imports
// netlab and so cannot be imported by netlab's own tests.

func skipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("cannot run in CI (a skip is a failure there): %s", reason)
	}
	tb.Skipf("skipped outside CI: %s", reason)
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(tb, "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
}

func newLabForTest(tb testing.TB) *Lab {
	tb.Helper()
	requireRoot(tb)
	lab, err := New(context.Background(), Options{Name: tb.Name()})
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
