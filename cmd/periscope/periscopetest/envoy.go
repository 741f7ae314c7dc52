package periscopetest

import (
	"fmt"
	"os"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy"
)

// EnvoyBinary is $PERISCOPE_ENVOY_BINARY or the collector's default
// (proxy.DefaultEnvoyBinary); a missing binary skips the test, or fails it
// in CI.
func EnvoyBinary(t *testing.T) string {
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
