package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
)

// fitAdoptedSizes makes the adopted flow maps fit this run's sizes before
// the programs are loaded over them. A flow table of another size is
// carried over entry by entry into one of the new size, pinned in its
// place: the connections it holds keep their entries and verdicts (an
// allowed connection whose replies pass only thanks to its entry lives
// on). A ring buffer of another size holds no state: it is unpinned and a
// new one made; what the old one still held is lost and logged. The old
// programs, attached until AttachInterface swaps the new ones in, go on
// using the old maps meanwhile: what they count in that window is lost.
func (d *Datapath) fitAdoptedSizes(flows, events *ebpf.MapSpec) error {
	n, err := d.carryResized(flows)
	if err != nil {
		return fmt.Errorf("carry the flow table to %d entries: %w", flows.MaxEntries, err)
	}
	if n >= 0 {
		d.log.Info("flow table resized: entries carried over", "entries", n, "flow_table_size", flows.MaxEntries)
	}
	p := filepath.Join(d.cfg.PinPath, events.Name)
	old, err := ebpf.LoadPinnedMap(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned %s: %w", p, err)
	}
	defer old.Close()
	if old.MaxEntries() == events.MaxEntries {
		return nil
	}
	d.log.Warn("ring buffer resized: unread events of the previous run are lost",
		"old_bytes", old.MaxEntries(), "ring_buffer_bytes", events.MaxEntries)
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("unpin %s: %w", p, err)
	}
	return nil
}

// fitPinnedSizes carries the pinned policy and redirect maps of another
// size (an upgrade that changed fixedSizes) into maps of this build's size,
// pinned in their place, so the policy in force survives it. Maps of
// another layout are left to Load's incompatible-pin path.
func (d *Datapath) fitPinnedSizes(spec *ebpf.CollectionSpec) error {
	for _, name := range sortedNames(fixedSizes) {
		n, err := d.carryResized(spec.Maps[name])
		if err != nil {
			return fmt.Errorf("carry pinned %s to %d entries: %w", name, spec.Maps[name].MaxEntries, err)
		}
		if n >= 0 {
			d.log.Info("pinned map resized: entries carried over", "map", name, "entries", n, "max_entries", spec.Maps[name].MaxEntries)
		}
	}
	return nil
}

// sortedNames are m's keys in order.
func sortedNames(m map[string]uint32) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// carryResized copies the entries of the map pinned under spec's name into
// a new map of spec's size and pins that in its place (an LRU table
// smaller than the old one keeps what fits). It returns how many entries
// it carried, or -1 when there was nothing to do: no pin, the same size,
// or another layout (type, key or value size), which Load's
// incompatible-pin path deals with.
func (d *Datapath) carryResized(spec *ebpf.MapSpec) (int, error) {
	p := filepath.Join(d.cfg.PinPath, spec.Name)
	old, err := ebpf.LoadPinnedMap(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open pinned %s: %w", p, err)
	}
	defer old.Close()
	if old.MaxEntries() == spec.MaxEntries || old.Type() != spec.Type ||
		old.KeySize() != spec.KeySize || old.ValueSize() != spec.ValueSize || old.Flags() != spec.Flags {
		return -1, nil
	}
	ns := spec.Copy()
	ns.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(ns)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	defer m.Close()
	key, val := make([]byte, spec.KeySize), make([]byte, spec.ValueSize)
	n := 0
	it := old.Iterate()
	for it.Next(&key, &val) {
		if err := m.Update(key, val, ebpf.UpdateAny); err != nil {
			return 0, fmt.Errorf("copy an entry of %s: %w", spec.Name, err)
		}
		n++
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("iterate pinned %s: %w", p, err)
	}
	// Pinned beside it, then renamed over it: the pin is never missing.
	tmp := p + "_resized" // bpffs refuses names with a dot
	_ = os.Remove(tmp)
	if err := m.Pin(tmp); err != nil {
		return 0, fmt.Errorf("pin resized %s: %w", spec.Name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("replace pinned %s: %w", p, err)
	}
	return n, nil
}
