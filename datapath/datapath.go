package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// Datapath is the loaded kernel side: programs, maps pinned under PinPath,
// attached interfaces, and the ring-buffer reader that Run drains.
type Datapath struct {
	cfg    Config
	log    *slog.Logger
	clock  Clock
	objs   tcFlowObjects
	reader *ringbuf.Reader

	mu        sync.Mutex // guards ifaces, sock, sockLink, closed
	ifaces    map[string]*attachment
	sock      *sockTraceObjects
	sockLink  link.Link
	closed    bool
	madePin   bool       // PinPath did not exist before Load
	runMu     sync.Mutex // held by Run for its whole duration
	tcxBroken bool       // tests: force the clsact fallback

	eventsRead   atomic.Uint64
	decodeErrors atomic.Uint64
	flowsEnded   atomic.Uint64 // by the sweeper
	flowsEvicted atomic.Uint64 // estimate of the last sweep

	policyMu   sync.Mutex // serialises ApplyPolicy and SetPolicyAudit
	policyMem  []byte     // mmapped policy_rev: the revision word
	grace      *ebpf.Map  // map-in-map whose update waits for an RCU grace period
	graceInner *ebpf.Map
	lastPolicy *compile.Compiled
	audit      map[uint32]bool
	names      atomic.Pointer[nameTables]
	revision   atomic.Uint64 // what policyMem holds
}

// Pin names under Config.PinPath.
const (
	pinFlows  = "flows"
	pinEvents = "events"
	pinStats  = "stats"
	pinLinks  = "links" // directory of pinned TCX links, <ifname>-<hook>
)

// Load mounts bpffs (if missing), removes the leftovers of a collector that
// did not Close (stale links are detached, stale maps unpinned: flows they
// held are not reported), loads the programs with cfg's sizes, and pins the
// maps under cfg.PinPath.
//
// The policy maps are the exception: pinned ones are ADOPTED, not removed,
// so a restarted collector judges connections with the policy in force
// (PolicyRevision continues; the names of its policies are unknown until the
// next ApplyPolicy). Pins whose layout no longer matches the programs (an
// upgrade) are removed with a warning and the node runs without policy
// until ApplyPolicy.
func Load(cfg Config) (*Datapath, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("datapath config: %w", err)
	}
	d := &Datapath{cfg: cfg, log: cfg.Logger.With("component", "datapath"), ifaces: map[string]*attachment{}}
	if d.clock, err = NewClock(); err != nil {
		return nil, err
	}
	if err := ensureBPFFS(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.PinPath); errors.Is(err, os.ErrNotExist) {
		d.madePin = true
	}
	if err := os.MkdirAll(filepath.Join(cfg.PinPath, pinLinks), 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cfg.PinPath, &st); err != nil || int64(st.Type) != unix.BPF_FS_MAGIC {
		d.removePinDir()
		return nil, fmt.Errorf("pin path %s is not on a bpffs (statfs: %v)", cfg.PinPath, err)
	}
	if err := d.removeStale(); err != nil {
		return nil, err
	}

	spec, err := loadTcFlow()
	if err != nil {
		return nil, fmt.Errorf("load flow program spec: %w", err)
	}
	spec.Maps[tcFlowMapEvents].MaxEntries = uint32(cfg.RingBufferSize)
	spec.Maps[tcFlowMapFlows].MaxEntries = uint32(cfg.FlowTableSize)
	if err := spec.Variables[tcFlowVarReportIntervalNs].Set(uint64(cfg.ReportInterval.Nanoseconds())); err != nil {
		return nil, fmt.Errorf("set report interval: %w", err)
	}
	if cfg.loadBytesOnly {
		if err := spec.Variables[tcFlowVarLoadBytesOnly].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("set load_bytes_only: %w", err)
		}
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinPath}}
	err = spec.LoadAndAssign(&d.objs, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		d.log.Warn("removing pinned policy maps of an incompatible layout", "err", err)
		for _, name := range policyPins {
			_ = os.Remove(filepath.Join(cfg.PinPath, name))
		}
		err = spec.LoadAndAssign(&d.objs, opts)
	}
	if err != nil {
		d.removePinDir()
		return nil, fmt.Errorf("load flow programs: %w", err)
	}
	if err := d.openPolicy(); err != nil {
		d.closeObjects()
		return nil, err
	}
	for name, m := range map[string]*ebpf.Map{pinFlows: d.objs.Flows, pinEvents: d.objs.Events, pinStats: d.objs.Stats} {
		if err := m.Pin(filepath.Join(cfg.PinPath, name)); err != nil {
			d.closeObjects()
			return nil, fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	if d.reader, err = ringbuf.NewReader(d.objs.Events); err != nil {
		d.closeObjects()
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	d.log.Info("datapath loaded", "pin_path", cfg.PinPath, "ring_buffer_bytes", cfg.RingBufferSize,
		"flow_table_size", cfg.FlowTableSize, "report_interval", cfg.ReportInterval)
	return d, nil
}

// removeStale detaches links and unpins maps left under PinPath by a
// collector that did not Close.
func (d *Datapath) removeStale() error {
	linkDir := filepath.Join(d.cfg.PinPath, pinLinks)
	entries, err := os.ReadDir(linkDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", linkDir, err)
	}
	for _, e := range entries {
		p := filepath.Join(linkDir, e.Name())
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			d.log.Warn("removing unreadable stale pin", "path", p, "err", err)
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove stale pin %s: %w", p, err)
			}
			continue
		}
		err = errors.Join(l.Unpin(), l.Close())
		if err != nil {
			return fmt.Errorf("detach stale link %s: %w", p, err)
		}
		d.log.Info("detached stale link of a previous run", "path", p)
	}
	for _, name := range []string{pinFlows, pinEvents, pinStats} {
		p := filepath.Join(d.cfg.PinPath, name)
		if err := os.Remove(p); err == nil {
			d.log.Info("removed stale map pin of a previous run", "path", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale pin %s: %w", p, err)
		}
	}
	return nil
}

// closeObjects unpins and closes the maps and programs.
func (d *Datapath) closeObjects() error {
	var errs []error
	for _, m := range []*ebpf.Map{d.objs.Flows, d.objs.Events, d.objs.Stats} {
		if m != nil && m.IsPinned() {
			errs = append(errs, m.Unpin())
		}
	}
	errs = append(errs, d.closePolicy()...)
	errs = append(errs, d.objs.Close())
	d.removePinDir()
	return errors.Join(errs...)
}

// removePinDir removes the (empty) pin directories; PinPath itself only if
// Load created it.
func (d *Datapath) removePinDir() {
	_ = os.Remove(filepath.Join(d.cfg.PinPath, pinLinks))
	if d.madePin {
		_ = os.Remove(d.cfg.PinPath)
	}
}

// Close detaches every interface and the tracepoint, stops Run (which
// returns nil), unpins the maps and closes everything: a clean shutdown
// leaves nothing under PinPath, except the policy maps while a policy
// selects some endpoint (ApplyPolicy(nil) first to remove them), which the
// next Load adopts.
func (d *Datapath) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var errs []error
	for name, a := range d.ifaces {
		errs = append(errs, a.detach())
		delete(d.ifaces, name)
	}
	if d.sockLink != nil {
		errs = append(errs, d.sockLink.Close())
	}
	if d.sock != nil {
		errs = append(errs, d.sock.Close())
	}
	d.mu.Unlock()

	errs = append(errs, d.reader.Close())
	d.runMu.Lock() // wait for Run to return before closing the maps it uses
	defer d.runMu.Unlock()
	errs = append(errs, d.closeObjects())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close datapath: %w", err)
	}
	return nil
}
