package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
)

// churnBuild is one build a comparison runs: the collector binary and the
// datapath's test binary (for BenchmarkTCProgram), of this tree or of a
// commit.
type churnBuild struct {
	name         string // "base" or "this"
	rev          string // the commit, or "" for the working tree
	collector    string
	datapathTest string
}

// buildThis builds the binaries of the working tree.
func buildThis(tb testing.TB, dir string) churnBuild {
	tb.Helper()
	root := repoRoot(tb)
	return buildAt(tb, churnBuild{name: "this"}, root, filepath.Join(dir, "this"))
}

// buildBase builds the binaries of commit rev, exported with git archive
// into dir (the repository's worktrees are left alone).
func buildBase(tb testing.TB, dir, rev string) churnBuild {
	tb.Helper()
	root := repoRoot(tb)
	commit := strings.TrimSpace(runOut(tb, root, "git", "rev-parse", "--verify", rev+"^{commit}"))
	src := filepath.Join(dir, "base-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		tb.Fatal(err)
	}
	archive := filepath.Join(dir, "base.tar")
	runOut(tb, root, "git", "archive", "-o", archive, commit)
	runOut(tb, src, "tar", "-xf", archive)
	return buildAt(tb, churnBuild{name: "base", rev: commit}, src, filepath.Join(dir, "base"))
}

func buildAt(tb testing.TB, b churnBuild, src, out string) churnBuild {
	tb.Helper()
	b.collector = out + "-periscope"
	b.datapathTest = out + "-datapath.test"
	runOut(tb, src, "go", "build", "-trimpath", "-o", b.collector, "./cmd/periscope")
	runOut(tb, src, "go", "test", "-c", "-o", b.datapathTest, "./datapath")
	return b
}

// repoRoot is the module's root (the tests run in cmd/periscope).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	return strings.TrimSpace(runOut(tb, ".", "go", "list", "-m", "-f", "{{.Dir}}"))
}

// runOut runs a command in dir and returns its standard output, failing tb
// with its output when it fails.
func runOut(tb testing.TB, dir, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr periscopetest.Output
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, stderr.String())
	}
	return string(out)
}
