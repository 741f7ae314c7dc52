// Package ciliumexample finds Cilium's own example policies (the
// examples/policies directory of the github.com/cilium/cilium module that
// go.mod requires) in the Go module cache, for tests that hold Periscope to
// the meaning Cilium's documentation gives them. The files are read where
// the go command put them, never copied into this repository. Only tests
// import this package.
package ciliumexample

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Module is the module whose examples are read, at the version go.mod
// requires.
const Module = "github.com/cilium/cilium"

// Path returns the file of Cilium's example policies at rel, a path below
// examples/policies/ ("l7/http/simple/l7.yaml"); it fails the test when the
// module or the file cannot be had.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	dir, err := moduleDir()
	if err != nil {
		tb.Fatalf("find Cilium's example policies: %v", err)
	}
	path := filepath.Join(dir, "examples", "policies", filepath.FromSlash(rel))
	if _, err := os.Stat(path); err != nil {
		tb.Fatalf("Cilium's example policy %s: %v", rel, err)
	}
	return path
}

// moduleDir is the module's directory in the module cache, downloaded when
// it is not there yet.
var moduleDir = sync.OnceValues(func() (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		// Under sudo's secure_path the toolchain that built the test may
		// not be on PATH.
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for _, args := range [][]string{{"list", "-m", "-f", "{{.Dir}}", Module}, {"mod", "download", "-json", Module}} {
		out, err := exec.Command(goCmd, args...).Output()
		if err != nil {
			return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
		if dir := strings.TrimSpace(string(out)); args[0] == "list" && dir != "" {
			return dir, nil
		}
	}
	out, err := exec.Command(goCmd, "list", "-m", "-f", "{{.Dir}}", Module).Output()
	if dir := strings.TrimSpace(string(out)); err == nil && dir != "" {
		return dir, nil
	}
	return "", fmt.Errorf("%s is not in the module cache after go mod download (%v)", Module, err)
})
