package datapath

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ensureMounted mounts a filesystem of type fstype at dir unless one is
// there already (checked by the filesystem magic).
func ensureMounted(dir, fstype string, magic int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && int64(st.Type) == magic {
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", dir, err)
	}
	if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s at %s: %w", fstype, dir, err)
	}
	return nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when missing.
func ensureBPFFS() error { return ensureMounted("/sys/fs/bpf", "bpf", unix.BPF_FS_MAGIC) }

// ensureTracefs mounts tracefs at /sys/kernel/tracing when missing (the
// tracepoint ids are read from there).
func ensureTracefs() error {
	return ensureMounted("/sys/kernel/tracing", "tracefs", unix.TRACEFS_MAGIC)
}
