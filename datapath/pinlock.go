package datapath

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrPinPathInUse is returned by Load when another live Datapath (another
// collector, or the demo) holds the pin path.
var ErrPinPathInUse = errors.New("pin path in use")

// pinLock is an exclusive flock on the pin directory itself (bpffs holds
// no regular files), held from before Load looks at what a previous run
// left until Close has removed or kept it. The kernel drops it when the
// holder dies, so a crashed collector's state is adopted or removed by the
// next one, and a live one's never is.
type pinLock struct{ f *os.File }

// lockPinPath takes the pin directory's lock or fails at once, naming the
// holder when /proc/locks tells it. The directory must exist; remade is
// true when it had to be made again (its holder removed it meanwhile).
func lockPinPath(dir string) (l *pinLock, remade bool, err error) {
	// A holder that removes the directory as it closes lets go of an
	// inode no longer at dir: lock again the one that is there.
	for range 10 {
		f, err := os.Open(dir)
		if err != nil {
			return nil, remade, fmt.Errorf("open pin path %s to lock it: %w", dir, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			holder := lockHolder(f)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, remade, fmt.Errorf("%w: %s is locked by another collector%s; give each its own --bpf-pin-path",
					ErrPinPathInUse, dir, holder)
			}
			return nil, remade, fmt.Errorf("lock pin path %s: %w", dir, err)
		}
		if sameInode(f, dir) {
			return &pinLock{f: f}, remade, nil
		}
		f.Close()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, remade, fmt.Errorf("create pin directory: %w", err)
		}
		remade = true
	}
	return nil, remade, fmt.Errorf("lock pin path %s: it keeps being removed and made again", dir)
}

// sameInode reports whether the open directory f is still the one at dir.
func sameInode(f *os.File, dir string) bool {
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(dir, &now) != nil {
		return false
	}
	return held.Dev == now.Dev && held.Ino == now.Ino
}

// lockHolder names the process holding a flock on f's inode (" (pid N)"),
// or returns "" when /proc/locks does not say.
func lockHolder(f *os.File) string {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return ""
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return ""
	}
	defer locks.Close()
	s := bufio.NewScanner(locks)
	for s.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"
		fields := strings.Fields(s.Text())
		if len(fields) >= 6 && fields[1] == "FLOCK" && fields[5] == id {
			return " (pid " + fields[4] + ")"
		}
	}
	return ""
}

// unlock lets another Datapath load from the pin path.
func (l *pinLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // drops the flock
	l.f = nil
	return err
}
