package netlab

import (
	"context"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing privilege or
// kernel feature is a failure and never a skip.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// SkipOrFail skips the test outside CI and fails it in CI: a test that needs
// root or a kernel feature must run in CI.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if InCI() {
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

// NewForTest builds a lab named after the test (which needs root: it
// skips, or fails in CI, without) and removes it when the test ends.
func NewForTest(tb testing.TB) *Lab {
	tb.Helper()
	RequireRoot(tb)
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
