package datapath

import (
	"cmp"
	"reflect"
	"slices"

	"github.com/cilium/ebpf"
)

// MapMemory is one of the datapath's kernel maps: its size and the memory
// the kernel accounts to it (memlock, as bpftool shows it): a preallocated
// map's whole size, a hash's bucket array plus the entries it holds.
type MapMemory struct {
	Name       string
	Type       string // ebpf.MapType's name: "LRUHash", "RingBuf", ...
	MaxEntries uint32 // for a ring buffer, its size in bytes
	Bytes      uint64
}

// MapMemory reports each of the datapath's maps (the flow programs' and,
// once attached, the sock tracepoint's), by name. It reads every map's info
// from the kernel: for status pages and metrics, not for hot paths. Safe
// for concurrent use.
func (d *Datapath) MapMemory() []MapMemory {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	var out []MapMemory
	seen := map[string]bool{}
	add := func(maps any) {
		v := reflect.ValueOf(maps).Elem()
		for i := range v.NumField() {
			m, ok := v.Field(i).Interface().(*ebpf.Map)
			name := v.Type().Field(i).Tag.Get("ebpf")
			if !ok || m == nil || seen[name] {
				continue
			}
			seen[name] = true
			mm := MapMemory{Name: name, Type: m.Type().String(), MaxEntries: m.MaxEntries()}
			if info, err := m.Info(); err == nil {
				mm.Bytes, _ = info.Memlock()
			}
			out = append(out, mm)
		}
	}
	add(&d.objs.tcFlowMaps)
	if d.sock != nil {
		add(&d.sock.sockTraceMaps)
	}
	slices.SortFunc(out, func(a, b MapMemory) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
