package netlab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxLabs is how many labs can exist at once: one /24 each in 198.18.0.0/16.
// 198.19.0.0/16 is left to tests that build their own veths in the root
// namespace, so their addresses never collide with a lab's bridge.
const maxLabs = 256

// lockDir holds one lock file per lab slot. A slot is taken while a process
// holds an exclusive flock on its file, so a crashed process frees its slot and
// parallel test binaries never share a subnet or a name.
const lockDir = "/run/periscope-netlab"

// slot is a lab's claim on its index: its subnets and names derive from it.
type slot struct {
	index int
	lock  *os.File
}

// slotID is the short id in every name a lab makes ("psc-<id>-...").
func slotID(index int) string { return fmt.Sprintf("%03x", index) }

// subnet4 is the lab's IPv4 /24 inside 198.18.0.0/15.
func subnet4(index int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(index>>8), byte(index), 0}), 24)
}

// subnet6 is the lab's IPv6 /64: fd00:5c:<index>::/64.
func subnet6(index int) netip.Prefix {
	var a [16]byte
	a[0], a[1] = 0xfd, 0x00
	a[2], a[3] = 0x00, 0x5c
	a[4], a[5] = byte(index>>8), byte(index)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// hostAddr returns the n-th address (n < 256) of prefix p; n=1 is the bridge.
func hostAddr(p netip.Prefix, n int) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	b[len(b)-1] = byte(n)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// claimSlot takes a free slot, starting at a random index so concurrent
// processes rarely contend for the same lock.
func claimSlot() (*slot, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	start := rand.IntN(maxLabs)
	for i := range maxLabs {
		index := (start + i) % maxLabs
		f, held, err := tryLock(index)
		if err != nil {
			return nil, err
		}
		if !held {
			return &slot{index: index, lock: f}, nil
		}
	}
	return nil, errors.New("all lab slots in 198.18.0.0/15 are taken")
}

// tryLock locks the slot's file; held is true (and f nil) when another open
// file holds it, in this process or another.
func tryLock(index int) (f *os.File, held bool, err error) {
	name := filepath.Join(lockDir, slotID(index)+".lock")
	f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("open lab lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, false, nil
}

// release frees the slot for other labs.
func (s *slot) release() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing drops the flock
	s.lock = nil
	return err
}
