package netlab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestPinNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  string // "" when not a test pin directory
	}{
		{"periscope-test-17743-1796295220129889919", "17743"},
		{"periscope-e2e-ui-11863-1796305534359370361-node-a", "11863"},
		{"periscope-test-dnsproxy-26644-1796297524449158800", "26644"},
		{"periscope", ""},
		{"periscope-demo", ""},
		{"periscope-test-12-34", ""}, // no nanosecond stamp: not ours
		{"cilium", ""},
	} {
		m := testPin.FindStringSubmatch(tc.name)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != tc.pid {
			t.Errorf("%s: pid %q, want %q", tc.name, got, tc.pid)
		}
	}
}

// A directory left by a process that is gone is removed; one whose process
// runs is not.
func TestSweepPinsRemovesOnlyTheDeadProcesses(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat(bpffsDir); err != nil {
		t.Fatalf("bpffs: %v", err)
	}
	ours := PinPath(t, "sweep")
	dead := filepath.Join(bpffsDir, "periscope-sweep-2147483646-1796295220129889919")
	for _, dir := range []string{ours, dead} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(dead) })
	if err := SweepPins(); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s (no such process) was not removed: %v", dead, err)
	}
	if _, err := os.Stat(ours); err != nil {
		t.Errorf("%s (this process) was removed: %v", ours, err)
	}
	if !strings.HasPrefix(filepath.Base(ours), "periscope-sweep-") {
		t.Errorf("PinPath gave %s", ours)
	}
}
