package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ThreadedNAPI turns threaded NAPI of the interface named ifname, in the
// root network namespace, on (`echo 1 > /sys/class/net/<ifname>/threaded`)
// and returns the process IDs of the kernel threads that now poll it, and
// a function that restores the former setting. Threaded, the interface's
// NAPI polls run in kernel threads named napi/<ifname>-<napi id> instead of
// the softirq of whoever scheduled them: for a veth (which has NAPI only
// with GRO or an XDP program on), what the peer's XDP redirects is
// processed by that thread, on whichever CPU it is allowed, not by the
// sender. The threads are the napi/ threads that appear when it is turned
// on (their names, cut to 15 bytes, may not tell interfaces apart).
func ThreadedNAPI(ifname string) (pids []int, restore func() error, err error) {
	path := filepath.Join("/sys/class/net", ifname, "threaded")
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("threaded napi of %s: %w", ifname, err)
	}
	if strings.TrimSpace(string(old)) != "0" {
		return nil, nil, fmt.Errorf("threaded napi of %s is already %q", ifname, strings.TrimSpace(string(old)))
	}
	before, err := napiThreads(ifname)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(path, []byte("1"), 0); err != nil {
		return nil, nil, fmt.Errorf("threaded napi of %s = 1: %w", ifname, err)
	}
	restore = func() error {
		if err := os.WriteFile(path, []byte("0"), 0); err != nil {
			return fmt.Errorf("restore threaded napi of %s = 0: %w", ifname, err)
		}
		return nil
	}
	for deadline := time.Now().Add(time.Second); len(pids) == 0; time.Sleep(10 * time.Millisecond) {
		after, err := napiThreads(ifname)
		if err != nil {
			return nil, nil, errors.Join(err, restore())
		}
		for pid := range after {
			if !before[pid] {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 && time.Now().After(deadline) {
			return nil, nil, errors.Join(fmt.Errorf("no napi/%s-* thread appeared (has it NAPI: GRO or XDP on?)", ifname), restore())
		}
	}
	slices.Sort(pids)
	return pids, restore, nil
}

// napiThreads are the process IDs of the threads in /proc whose name
// could be napi/<ifname>-<id> cut to 15 bytes.
func napiThreads(ifname string) (map[int]bool, error) {
	want := "napi/" + ifname + "-"
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("napi threads of %s: %w", ifname, err)
	}
	out := map[int]bool{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(c))
		if strings.HasPrefix(comm, want) || len(comm) == 15 && strings.HasPrefix(want, comm) {
			out[pid] = true
		}
	}
	return out, nil
}
