package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachSockTracepoint loads the sock/inet_sock_set_state program (sharing
// the ring buffer and loss counters) and attaches it, mounting tracefs if
// needed. Its link is not pinned: it ends with the process. Attaching twice
// is a no-op.
func (d *Datapath) AttachSockTracepoint() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("attach sock tracepoint: datapath closed")
	}
	if d.sockLink != nil {
		return nil
	}
	if err := ensureTracefs(); err != nil {
		return fmt.Errorf("attach sock tracepoint: %w", err)
	}
	spec, err := loadSockTrace()
	if err != nil {
		return fmt.Errorf("load sock program spec: %w", err)
	}
	// The replacement must match the loaded ring's size.
	spec.Maps[sockTraceMapEvents].MaxEntries = uint32(d.cfg.RingBufferSize)
	spec.Maps[sockTraceMapSocks].MaxEntries = uint32(d.cfg.SockTableSize)
	if err := spec.Variables[sockTraceVarWakeupBytes].Set(d.cfg.wakeupBytes()); err != nil {
		return fmt.Errorf("set wakeup_bytes of the sock program: %w", err)
	}
	objs := &sockTraceObjects{}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		sockTraceMapEvents: d.objs.Events,
		sockTraceMapStats:  d.objs.Stats,
	}}
	if err := spec.LoadAndAssign(objs, opts); err != nil {
		return fmt.Errorf("load sock program: %w", err)
	}
	l, err := link.Tracepoint("sock", "inet_sock_set_state", objs.SockState, nil)
	if err != nil {
		_ = objs.Close()
		return fmt.Errorf("attach sock/inet_sock_set_state: %w", err)
	}
	d.sock, d.sockLink = objs, l
	d.log.Info("attached sock tracepoint")
	return nil
}
