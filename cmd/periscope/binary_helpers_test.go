package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy"
)

// buildPeriscope builds this package's binary into dir and returns its path.
func buildPeriscope(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "periscope")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// envoyBinary is $PERISCOPE_ENVOY_BINARY or the collector's default; a
// missing binary skips the test, or fails it in CI.
func envoyBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PERISCOPE_ENVOY_BINARY")
	if bin == "" {
		bin = proxy.DefaultEnvoyBinary
	}
	if _, err := os.Stat(bin); err != nil {
		labtest.SkipOrFail(t, fmt.Sprintf("no Envoy at %s (run scripts/deps.sh): %v", bin, err))
	}
	return bin
}
