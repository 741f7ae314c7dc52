package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	bridges   map[string]*bridgeHook // proxy_assign on the bridges of attached ports, by bridge name
	sock      *sockTraceObjects
	sockLink  link.Link
	closed    bool
	madePin   bool                 // PinPath did not exist before Load
	pinLock   *pinLock             // held from Load until Close is done with PinPath
	adopting  bool                 // Load found a policy in force and adopts the previous run's state
	adopted   map[string]link.Link // pinned TCX links of the previous run, by pin name, until AttachInterface claims them
	runMu     sync.Mutex           // held by Run for its whole duration
	tcxBroken bool                 // tests: force the clsact fallback

	// The user-space counters (counters.go), pinned and adopted with the
	// kernel's stats; Run's goroutine adds to them.
	counters     *userCounters
	eventsRead   *atomic.Uint64
	decodeErrors *atomic.Uint64
	flowsEnded   *atomic.Uint64 // by the sweeper
	records      *atomic.Uint64 // handed to emit
	flowsEvicted atomic.Uint64  // estimate of the last sweep
	flowsLive    atomic.Uint64  // flow-table entries the last sweep read
	merge        mergeStats

	policyMu   sync.Mutex // serialises ApplyPolicy and SetPolicyAudit
	policyMem  []byte     // mmapped policy_rev: the revision word
	fastMem    [2][]byte  // mmapped policy_fast_0, _1
	fast       [2]fastTable
	fastNew    bool      // Load created policy_fast (none was pinned)
	grace      *ebpf.Map // map-in-map whose update waits for an RCU grace period
	graceInner *ebpf.Map
	lastPolicy *compile.Compiled
	settling   *settling      // the last revision change's grace period, nil once settled
	content    [2]slotContent // what each policy slot holds
	audit      map[uint32]bool
	names      atomic.Pointer[nameTables]
	revision   atomic.Uint64 // what policyMem holds

	redirectMu sync.Mutex // serialises SetRedirects
	redirects  []Redirect // of the last SetRedirects
}

// Pin names under Config.PinPath.
const (
	pinFlows  = "flows"
	pinEvents = "events"
	pinStats  = "stats"
	pinLinks  = "links" // directory of pinned TCX links, <ifname>-<hook>
)

// flowPins are the maps pinned by name next to the policy maps: adopted
// with them while a policy is in force.
var flowPins = []string{pinFlows, pinEvents, pinStats}

// Load mounts bpffs (if missing), deals with what a previous run left
// under cfg.PinPath, loads the programs with cfg's sizes, and pins the maps
// under cfg.PinPath.
//
// One Datapath at a time uses a pin path: Load locks it (flock on the
// directory) before it looks at anything there, until Close. While another
// process (or another Datapath of this one) holds it, Load fails with
// ErrPinPathInUse and has touched nothing.
//
// When the pinned policy of a previous run is in force (its revision
// selects an endpoint), that run's state is ADOPTED so enforcement has no
// gap: the flow table, ring buffer, counters and policy maps are re-used
// (established connections keep their entries and verdicts), and its pinned
// TCX links keep running the old programs until AttachInterface swaps the
// new ones in place (link update, no detach). PolicyRevision continues; the
// names of its policies are unknown until the next ApplyPolicy.
//
// Otherwise the leftovers of a collector that did not Close are removed:
// stale links are detached and stale flow maps unpinned (flows they held
// are not reported); pinned policy maps are still adopted.
//
// An adopted flow table of another size than cfg's is carried over into
// one of cfg's size, and a ring buffer of another size replaced
// (fitAdoptedSizes). Pins whose layout no longer matches the programs (an
// upgrade) are removed with a warning: the flow maps first, then the
// policy maps, in which case the node runs without policy until
// ApplyPolicy.
func Load(cfg Config) (_ *Datapath, err error) {
	cfg, err = cfg.withDefaults()
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
	if err := os.MkdirAll(cfg.PinPath, 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cfg.PinPath, &st); err != nil || int64(st.Type) != unix.BPF_FS_MAGIC {
		d.removePinDir()
		return nil, fmt.Errorf("pin path %s is not on a bpffs (statfs: %v)", cfg.PinPath, err)
	}
	// Before anything under PinPath is looked at: a live collector's
	// links and maps are never adopted or removed by a second one.
	lock, remade, err := lockPinPath(cfg.PinPath)
	if err != nil {
		return nil, err
	}
	d.pinLock, d.madePin = lock, d.madePin || remade
	defer func() {
		if err != nil {
			d.pinLock.unlock()
		}
	}()
	if err := os.MkdirAll(filepath.Join(cfg.PinPath, pinLinks), 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory: %w", err)
	}
	if d.adopting = pinnedPolicyInForce(cfg.PinPath); d.adopting {
		// The previous run kept PinPath for us only: ours to remove once
		// there is nothing left to keep.
		d.madePin = true
		if err := d.adoptLinks(); err != nil {
			return nil, err
		}
	} else if err := d.removeStale(); err != nil {
		return nil, err
	}

	spec, err := loadTcFlow()
	if err != nil {
		return nil, fmt.Errorf("load flow program spec: %w", err)
	}
	if err := sizeFlowMaps(spec, cfg); err != nil {
		return nil, err
	}
	if err := spec.Variables[tcFlowVarReportIntervalNs].Set(uint64(cfg.ReportInterval.Nanoseconds())); err != nil {
		return nil, fmt.Errorf("set report interval: %w", err)
	}
	if err := spec.Variables[tcFlowVarWakeupBytes].Set(cfg.wakeupBytes()); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}
	if cfg.loadBytesOnly {
		if err := spec.Variables[tcFlowVarLoadBytesOnly].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("set load_bytes_only: %w", err)
		}
	}
	// Pinned by name: adopted when a previous run left them (see above),
	// created and pinned otherwise.
	for _, name := range flowPins {
		spec.Maps[name].Pinning = ebpf.PinByName
	}
	if d.adopting {
		if err := d.fitAdoptedSizes(spec.Maps[tcFlowMapFlows], spec.Maps[tcFlowMapEvents]); err != nil {
			d.removePinDir()
			return nil, err
		}
	}
	if err := d.fitPinnedSizes(spec); err != nil {
		d.removePinDir()
		return nil, err
	}
	_, err = os.Stat(filepath.Join(cfg.PinPath, "policy_fast_0"))
	d.fastNew = err != nil
	_, err = os.Stat(filepath.Join(cfg.PinPath, pinStats))
	statsAdopted := err == nil
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinPath}}
	err = spec.LoadAndAssign(&d.objs, opts)
	for _, pins := range [][]string{flowPins, policyPins, redirectPins} {
		if !errors.Is(err, ebpf.ErrMapIncompatible) {
			break
		}
		d.log.Warn("removing pinned maps of an incompatible layout", "maps", pins, "err", err)
		for _, name := range pins {
			_ = os.Remove(filepath.Join(cfg.PinPath, name))
		}
		statsAdopted = statsAdopted && !slices.Contains(pins, pinStats)
		err = spec.LoadAndAssign(&d.objs, opts)
	}
	if err != nil {
		d.removePinDir()
		return nil, fmt.Errorf("load flow programs: %w", err)
	}
	if err := d.openPolicy(); err != nil {
		d.closeObjects(d.adopting)
		return nil, err
	}
	if err := d.openCounters(statsAdopted); err != nil {
		d.closeObjects(d.adopting)
		return nil, err
	}
	if d.reader, err = ringbuf.NewReader(d.objs.Events); err != nil {
		d.closeObjects(d.adopting)
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	if statsAdopted && !d.counters.adopted {
		d.deriveEventsRead()
	}
	d.log.Info("datapath loaded", "pin_path", cfg.PinPath, "flow_budget", cfg.FlowBudget, "ring_buffer_bytes", cfg.RingBufferSize,
		"flow_table_size", cfg.FlowTableSize, "report_interval", cfg.ReportInterval, "adopted", d.adopting)
	return d, nil
}

// removeStale detaches links and unpins maps left under PinPath by a
// collector that did not Close.
func (d *Datapath) removeStale() error {
	err := d.eachPinnedLink(func(_, path string, l link.Link) error {
		if err := errors.Join(l.Unpin(), l.Close()); err != nil {
			return fmt.Errorf("detach stale link %s: %w", path, err)
		}
		d.log.Info("detached stale link of a previous run", "path", path)
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range flowPins {
		p := filepath.Join(d.cfg.PinPath, name)
		if err := os.Remove(p); err == nil {
			d.log.Info("removed stale map pin of a previous run", "path", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale pin %s: %w", p, err)
		}
	}
	return nil
}

// closeObjects closes the maps and programs and, unless keep, unpins the
// maps.
func (d *Datapath) closeObjects(keep bool) error {
	var errs []error
	for _, m := range []*ebpf.Map{d.objs.Flows, d.objs.Events, d.objs.Stats} {
		if !keep && m != nil && m.IsPinned() {
			errs = append(errs, m.Unpin())
		}
	}
	errs = append(errs, d.closePolicy(keep)...)
	errs = append(errs, d.counters.close(keep))
	errs = append(errs, d.objs.Close())
	d.removePinDir()
	return errors.Join(errs...)
}

// removePinDir removes the (empty) pin directories; PinPath itself only if
// Load created it or adopted a previous run's state in it.
func (d *Datapath) removePinDir() {
	_ = os.Remove(filepath.Join(d.cfg.PinPath, pinLinks))
	if d.madePin {
		_ = os.Remove(d.cfg.PinPath)
	}
}

// KeepsEnforcing reports whether a policy is in force (its revision selects
// some endpoint). Close then leaves the programs attached and their maps
// and links pinned, so the node keeps enforcing while no collector runs and
// the next Load adopts them; a caller shutting down cleanly should not
// DetachInterface (which would still detach: it is an explicit request).
func (d *Datapath) KeepsEnforcing() bool {
	d.policyMu.Lock()
	defer d.policyMu.Unlock()
	return d.policyMem != nil && d.policyInForce()
}

// Close stops Run (which returns nil) and the tracepoint and closes
// everything. Without a policy in force it detaches every interface and
// unpins the maps: a clean shutdown leaves nothing under PinPath. With a
// policy in force (KeepsEnforcing; ApplyPolicy(nil) first to avoid it) the
// attached programs stay attached and the TCX links and the maps stay
// pinned, for the next Load to adopt.
func (d *Datapath) Close() error {
	keep := d.KeepsEnforcing()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var errs []error
	for name, a := range d.ifaces {
		if keep {
			errs = append(errs, a.release())
		} else {
			errs = append(errs, a.detach())
		}
		delete(d.ifaces, name)
	}
	for name, b := range d.bridges {
		if keep {
			errs = append(errs, b.a.release())
		} else {
			errs = append(errs, b.a.detach())
		}
		delete(d.bridges, name)
	}
	for name, l := range d.adopted {
		if !keep {
			errs = append(errs, l.Unpin())
		}
		errs = append(errs, l.Close())
		delete(d.adopted, name)
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
	errs = append(errs, d.closeObjects(keep))
	errs = append(errs, d.pinLock.unlock())
	if keep {
		d.log.Info("policy in force: programs left attached and pinned for the next run", "pin_path", d.cfg.PinPath)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close datapath: %w", err)
	}
	return nil
}
