package netlab

import (
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
