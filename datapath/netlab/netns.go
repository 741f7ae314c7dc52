package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Named network namespaces live where `ip netns` keeps them, and are made
// and removed the way iproute2 does, so that labs and `ip netns` coexist in
// any order:
//
//   - netnsDir is a mount point of its own with shared propagation (the
//     first `ip netns add` on a machine bind-mounts it over itself and makes
//     it MS_SHARED|MS_REC; netlab does the same before its first mount).
//     Without it, the first `ip netns add` after a lab's mounts would copy
//     them into its new bind mount and shadow the originals, which then
//     could be neither unmounted nor unlinked ("device or resource busy").
//   - A namespace is a file in netnsDir with the namespace bind-mounted on
//     it; removing it unmounts with MNT_DETACH, then unlinks.
//   - A namespace made before that bind mount existed (by an older netlab,
//     or anything else) stays shadowed under it; removeShadowed unlinks it
//     from a private mount namespace, where the kernel lets go of the
//     shadowed mounts.

// netnsDir is where named network namespaces live, as for `ip netns`.
const netnsDir = "/var/run/netns"

// netnsDirLock serialises making netnsDir a mount point among netlab's
// processes, so two of them never stack two bind mounts.
const netnsDirLock = lockDir + "/netns-dir.lock"

// ensureNetnsDir makes netnsDir a shared mount point, as iproute2's
// `ip netns add` does: make it shared; if it is no mount point (EINVAL),
// bind-mount it over itself and try again.
func ensureNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", netnsDir, err)
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("create lock dir: %w", err)
	}
	lock, err := os.OpenFile(netnsDirLock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", netnsDirLock, err)
	}
	defer lock.Close() // drops the flock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", netnsDirLock, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s a shared mount: %w", netnsDir, err)
		}
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s over itself: %w", netnsDir, err)
		}
	}
}

// newNamedNetns creates a network namespace mounted at netnsDir/name
// without moving the calling goroutine's thread into it for good.
func newNamedNetns(name string) (netns.NsHandle, error) {
	if err := ensureNetnsDir(); err != nil {
		return netns.None(), fmt.Errorf("create netns %s: %w", name, err)
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()
	ns, err := mountNewNetns(path)
	if err != nil {
		os.Remove(path)
		return netns.None(), fmt.Errorf("create netns %s: %w", name, err)
	}
	return ns, nil
}

// mountNewNetns makes a network namespace on a locked thread, bind-mounts
// it on path, and switches the thread back.
func mountNewNetns(path string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	ns, nsErr := netns.New()
	if nsErr == nil {
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			ns.Close()
			nsErr = fmt.Errorf("bind-mount it on %s: %w", path, err)
		}
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: leave it locked so
		// the runtime retires it with this goroutine.
		if nsErr == nil {
			ns.Close()
		}
		return netns.None(), fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	if nsErr != nil {
		return netns.None(), nsErr
	}
	return ns, nil
}

// deleteNetns unmounts (MNT_DETACH) and removes a named network namespace;
// a missing one is fine, and so is one whose mount is gone already.
func deleteNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unmountAll(path); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	err := unix.Unlink(path)
	if errors.Is(err, unix.EBUSY) {
		// Still a mount point under a later bind mount of netnsDir.
		err = removeShadowed(path)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// unmountAll detaches every mount stacked on path.
func unmountAll(path string) error {
	for {
		err := unix.Unmount(path, unix.MNT_DETACH)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		default:
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
}

// removeShadowed unlinks path although it is a mount point hidden under a
// bind mount of its directory, where no path reaches it. A thread of its
// own enters a private copy of the mount namespace, detaches there the
// directory's bind mounts and every mount on path, and unlinks it: the
// kernel refuses to unlink a mount point only in the caller's mount
// namespace, and detaches the mounts on it in the others. The thread never
// leaves that namespace and dies with its goroutine.
func removeShadowed(path string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime retires the thread
		done <- unlinkInPrivateMounts(path)
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("remove %s shadowed by a bind mount of %s: %w", path, filepath.Dir(path), err)
	}
	return nil
}

// unlinkInPrivateMounts runs on a locked thread it may leave in another
// mount namespace.
func unlinkInPrivateMounts(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare the mount namespace: %w", err)
	}
	// Nothing done here may propagate back to the node's mounts.
	if err := unix.Mount("", "/", "none", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mount namespace private: %w", err)
	}
	if err := unmountAll(path); err != nil {
		return err
	}
	if err := unmountAll(filepath.Dir(path)); err != nil {
		return err
	}
	if err := unmountAll(path); err != nil {
		return err
	}
	return unix.Unlink(path)
}
