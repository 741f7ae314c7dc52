package periscopetest

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Build builds the periscope binary the way make build does into a
// directory of the test's own and returns its path. Go's build cache makes
// every build after a package's first a link only.
func Build(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "periscope")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/periscope-dev/periscope/cmd/periscope")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
