package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// bpffsDir is where tests pin their datapaths' maps and links.
const bpffsDir = "/sys/fs/bpf"

// Cleaner is the part of testing.TB PinPath needs (netlab is also linked
// into the demo, which must not import package testing).
type Cleaner interface {
	Cleanup(func())
}

// PinPath returns a fresh bpffs directory for one test's datapath,
// /sys/fs/bpf/periscope-<name>-<pid>-<nanoseconds>, and removes it when the
// test ends. The first call in a process also removes what such directories
// processes that are gone left behind: a test binary killed by its timeout
// cannot run its cleanups.
func PinPath(t Cleaner, name string) string {
	sweepPinsOnce.Do(func() { _ = SweepPins() })
	path := filepath.Join(bpffsDir, fmt.Sprintf("periscope-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { _ = os.RemoveAll(path) })
	return path
}

var sweepPinsOnce sync.Once

// testPin matches the directories PinPath and the tests before it named:
// periscope-<name>-<pid>-<nanoseconds>[-<suffix>].
var testPin = regexp.MustCompile(`^periscope-[a-z0-9-]+?-([0-9]+)-[0-9]{16,}(-[a-z0-9-]+)?$`)

// SweepPins removes the test pin directories under /sys/fs/bpf whose
// process is gone, and reports what it could not remove. A directory whose
// process still runs (or may: any doubt) is spared.
func SweepPins() error {
	entries, err := os.ReadDir(bpffsDir)
	if err != nil {
		return fmt.Errorf("list %s: %w", bpffsDir, err)
	}
	var errs []error
	for _, e := range entries {
		m := testPin.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || processExists(pid) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(bpffsDir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("remove stale pins %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// processExists reports whether pid names a process; only "no such
// process" counts as gone.
func processExists(pid int) bool {
	if pid <= 0 {
		return true
	}
	err := syscall.Kill(pid, 0)
	return !errors.Is(err, syscall.ESRCH)
}
