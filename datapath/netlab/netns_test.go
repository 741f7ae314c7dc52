package netlab

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// freshMountsEnv names the test a re-executed test binary runs in a private
// mount namespace of its own.
const freshMountsEnv = "PERISCOPE_NETLAB_FRESH_MOUNTS"

// inFreshMounts runs the calling test again in a child test binary, in a
// private copy of the mount namespace where netnsDir is no mount point, as
// on a machine where nobody ran `ip netns` yet. It returns true in the
// child, which runs the test's body; in the parent it waits for the child,
// fails the test with the child's output if it failed, and returns false.
func inFreshMounts(t *testing.T) bool {
	t.Helper()
	requireRoot(t)
	if os.Getenv(freshMountsEnv) == t.Name() {
		resetNetnsDir(t)
		return true
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, tool+" is not installed: "+err.Error())
		}
	}
	cmd := exec.CommandContext(t.Context(), "unshare", "--mount", "--propagation", "private",
		os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), freshMountsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a private mount namespace: %v\n%s", t.Name(), err, out)
	}
	t.Logf("in a private mount namespace:\n%s", out)
	return false
}

// resetNetnsDir detaches the bind mounts of netnsDir in this process's
// (private) mount namespace, so netnsDir is a plain directory again.
func resetNetnsDir(t *testing.T) {
	t.Helper()
	if err := unmountAll(netnsDir); err != nil {
		t.Fatalf("reset %s: %v", netnsDir, err)
	}
	if mounted(t, netnsDir) {
		t.Fatalf("%s is still a mount point", netnsDir)
	}
}

// mounted reports whether path (under /var/run, which is /run) is a mount
// point in this process's mount namespace.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	path = strings.Replace(path, "/var/run/", "/run/", 1)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

// ipNetns runs `ip netns args...`.
func ipNetns(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", append([]string{"netns"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip netns %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// assertGone fails the test if the named namespace's file or a mount on it
// is left.
func assertGone(t *testing.T, name string) {
	t.Helper()
	path := filepath.Join(netnsDir, name)
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is left: %v", path, err)
	}
	if mounted(t, path) {
		t.Errorf("a mount on %s is left", path)
	}
}

// TestLabsAndIPNetnsCoexist starts and stops labs around `ip netns add` and
// `ip netns delete` in every order, from a netnsDir that is no mount point
// yet: the first `ip netns add` bind-mounts it over itself, which must not
// keep a lab from removing its namespaces, nor `ip netns` from removing its
// own.
func TestLabsAndIPNetnsCoexist(t *testing.T) {
	if !inFreshMounts(t) {
		return
	}
	// The `ip netns` namespace is named inside a slot of its own, so no
	// other process's Cleanup takes it for a crashed lab's.
	own, err := claimSlot()
	if err != nil {
		t.Fatal(err)
	}
	defer own.release()
	other := NamePrefix + slotID(own.index) + "-ipnetns"

	type step func(t *testing.T, lab **Lab, pod **Pod)
	startLab := func(t *testing.T, lab **Lab, pod **Pod) {
		l, err := New(t.Context(), Options{Name: t.Name()})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { l.Close() })
		p, err := l.AddPod(PodSpec{Name: "pod"})
		if err != nil {
			t.Fatalf("AddPod: %v", err)
		}
		*lab, *pod = l, p
	}
	stopLab := func(t *testing.T, lab **Lab, pod **Pod) {
		if err := (*lab).Close(); err != nil {
			t.Fatalf("lab Close: %v", err)
		}
		assertGone(t, (*pod).NetNSName)
	}
	add := func(t *testing.T, lab **Lab, pod **Pod) {
		ipNetns(t, "add", other)
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", other).Run() })
		if *lab != nil && !(*lab).closed {
			// The lab's pod is still reachable by its name.
			ipNetns(t, "exec", (*pod).NetNSName, "ip", "link", "show", "eth0")
		}
	}
	del := func(t *testing.T, _ **Lab, _ **Pod) {
		ipNetns(t, "delete", other)
		assertGone(t, other)
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"ip netns add between lab start and stop, delete after", []step{startLab, add, stopLab, del}},
		{"ip netns add and delete between lab start and stop", []step{startLab, add, del, stopLab}},
		{"ip netns add before lab start, delete before stop", []step{add, startLab, del, stopLab}},
		{"ip netns add before lab start, delete after stop", []step{add, startLab, stopLab, del}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resetNetnsDir(t)
			var lab *Lab
			var pod *Pod
			for _, s := range tc.steps {
				s(t, &lab, &pod)
			}
		})
	}
}

// TestNamespacesShadowedByIPNetnsAreRemoved removes what an older netlab
// left: a namespace mounted before `ip netns add` bind-mounted netnsDir
// over itself, which no path reaches any more.
func TestNamespacesShadowedByIPNetnsAreRemoved(t *testing.T) {
	if !inFreshMounts(t) {
		return
	}
	lab, err := New(t.Context(), Options{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	resetNetnsDir(t) // New made it a mount point; an older netlab did not
	old := lab.prefix() + "old"
	ns, err := netns.NewNamed(old) // how netlab made namespaces before
	if err != nil {
		t.Fatalf("create %s the old way: %v", old, err)
	}
	ns.Close()
	other := lab.prefix() + "ipnetns"
	ipNetns(t, "add", other)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", other).Run() })
	ipNetns(t, "delete", other)

	if err := lab.Close(); err != nil {
		t.Fatalf("lab Close: %v", err)
	}
	assertGone(t, old)
	// No mount of it is left underneath either.
	if err := unmountAll(netnsDir); err != nil {
		t.Fatal(err)
	}
	assertGone(t, old)
}
