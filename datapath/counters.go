package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// pinCounters is the pin name of the user-space counters.
const pinCounters = "counters"

// Slots of the user-space counters.
const (
	counterRead         = iota // events read from the ring buffer
	counterDecodeErrors        // events (or swept entries) that did not decode
	counterSwept               // End records the sweeper built
	counterRecords             // flow records handed to Run's emit
	counterMerged              // events folded into another's record by the merger
	numCounters
)

// userCounters are the counts the datapath keeps in user space, in a BPF
// array map of their own (not the programs'), mapped into memory and
// pinned beside the kernel's stats (pinCounters). They are adopted exactly
// when the kernel's stats are, so that both sides of an account (events
// emitted and lost by the kernel, read by user space) begin together and go
// on together across a restart; a crashed process loses no increment, as
// they land in the map's memory. Run's goroutine increments them without a
// lock; readers take mu, which close takes to unmap.
type userCounters struct {
	m       *ebpf.Map
	mem     []byte
	adopted bool // the map was pinned by an earlier run

	mu     sync.RWMutex
	closed bool
}

// openCounters adopts the pinned counters when adopt (the kernel's stats
// were adopted) and they have this layout; otherwise it creates them at
// zero, replacing any pin.
func openCounters(pinPath string, adopt bool) (*userCounters, error) {
	p := filepath.Join(pinPath, pinCounters)
	spec := &ebpf.MapSpec{Name: pinCounters, Type: ebpf.Array, KeySize: 4, ValueSize: 8,
		MaxEntries: numCounters, Flags: unix.BPF_F_MMAPABLE}
	c := &userCounters{}
	if adopt {
		m, err := ebpf.LoadPinnedMap(p, nil)
		switch {
		case err == nil && m.Type() == spec.Type && m.KeySize() == spec.KeySize && m.ValueSize() == spec.ValueSize &&
			m.MaxEntries() == spec.MaxEntries && m.Flags()&unix.BPF_F_MMAPABLE != 0:
			c.m, c.adopted = m, true
		case err == nil:
			m.Close() // another layout: begin again
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("open pinned %s: %w", p, err)
		}
	}
	if c.m == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale pin %s: %w", p, err)
		}
		m, err := ebpf.NewMap(spec)
		if err != nil {
			return nil, fmt.Errorf("create user-space counters: %w", err)
		}
		if err := m.Pin(p); err != nil {
			m.Close()
			return nil, fmt.Errorf("pin user-space counters: %w", err)
		}
		c.m = m
	}
	mem, err := unix.Mmap(c.m.FD(), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		if !c.adopted {
			_ = c.m.Unpin()
		}
		c.m.Close()
		return nil, fmt.Errorf("mmap user-space counters: %w", err)
	}
	c.mem = mem
	return c, nil
}

// counter is slot i, for Run's goroutine (and tests) to add to.
func (c *userCounters) counter(i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[8*i]))
}

// load reads slot i; zero once closed.
func (c *userCounters) load(i int) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0
	}
	return c.counter(i).Load()
}

// close unmaps the counters and closes the map, unpinning it unless keep.
func (c *userCounters) close(keep bool) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	errs = append(errs, unix.Munmap(c.mem))
	if !keep {
		errs = append(errs, c.m.Unpin())
	}
	errs = append(errs, c.m.Close())
	return errors.Join(errs...)
}

// openCounters opens the user-space counters (see userCounters): adopted
// when the kernel's stats were.
func (d *Datapath) openCounters(statsAdopted bool) error {
	c, err := openCounters(d.cfg.PinPath, statsAdopted)
	if err != nil {
		return err
	}
	d.counters = c
	d.eventsRead = c.counter(counterRead)
	d.decodeErrors = c.counter(counterDecodeErrors)
	d.flowsEnded = c.counter(counterSwept)
	d.records = c.counter(counterRecords)
	d.merge.folded = c.counter(counterMerged)
	return nil
}

// deriveEventsRead sets the events read to what the adopted kernel stats
// imply: every event emitted was read, lost, or waits in the ring. For a
// pin path of a version without user-space counters; the earlier runs'
// reads are taken as decoded.
func (d *Datapath) deriveEventsRead() {
	k, err := d.kernelStats()
	if err != nil {
		d.log.Warn("derive the events read by earlier runs", "err", err)
		return
	}
	pending := d.eventsPending()
	if k.emitted < k.lost+pending {
		return
	}
	read := k.emitted - k.lost - pending
	d.eventsRead.Store(read)
	d.records.Store(read)
	d.log.Info("adopted kernel counters without user-space ones: events read by earlier runs derived", "events_read", read)
}
