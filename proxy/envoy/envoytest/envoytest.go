// Package envoytest is the test side of package envoy: the Envoy binary
// tests run. Only tests import it.
package envoytest

import (
	"fmt"
	"os"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy"
)

// Binary is the Envoy the tests run: $PERISCOPE_ENVOY_BINARY, else the one
// scripts/deps.sh installs (envoy.DefaultBinary). A missing binary skips the
// test, or fails it in CI.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv("PERISCOPE_ENVOY_BINARY")
	if bin == "" {
		bin = envoy.DefaultBinary
	}
	if _, err := os.Stat(bin); err != nil {
		labtest.SkipOrFail(tb, fmt.Sprintf("no Envoy at %s (run scripts/deps.sh): %v", bin, err))
	}
	return bin
}
