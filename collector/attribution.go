package collector

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// A workload's first packets may cross the node before its watcher
// reports it: a pod's network exists (the CNI made it, the pod talks)
// before its addresses are in its status. Its records would then name
// reserved:world. Periscope is not the CNI, so it cannot learn of the pod
// at its network's creation as Cilium does; instead the collector holds
// the records one side of which is such an unknown workload (an address
// no endpoint has, on one of the node's workload networks: routed to a
// pod's veth or a bridge of them), for a bounded window, and attributes
// them again when an endpoint is put in force; at the window's end they
// go on as they are. Every other record passes at once, as before.

// DefaultAttributionWindow is how long a record of an unknown workload is
// held by default: the time from a pod's network to its addresses in its
// status is tens of milliseconds (p99 123 ms at 10 pods/s,
// docs/BENCHMARKS.md), its watcher's report a few more.
const DefaultAttributionWindow = 2 * time.Second

// DefaultAttributionCapacity bounds the records held at once by default
// (a few MiB at most: the hold grows only while records wait); a record
// beyond it goes on unheld.
const DefaultAttributionCapacity = 4096

// WorkloadNetworks tells whether an address is on one of the node's
// workload networks; *hostveth.Networks implements it. Contains must not
// allocate.
type WorkloadNetworks interface {
	Contains(a netip.Addr) bool
}

// Attribution configures the hold of the records of workloads not yet
// discovered (Options.Attribution).
type Attribution struct {
	// Networks are the node's workload networks; required.
	Networks WorkloadNetworks
	// Window is how long a record is held at most;
	// DefaultAttributionWindow when zero.
	Window time.Duration
	// Capacity bounds the records held at once;
	// DefaultAttributionCapacity when zero.
	Capacity int
}

// heldFlow is a record waiting for its endpoint.
type heldFlow struct {
	f     api.Flow
	until time.Time
}

// attributionHold holds records of unknown workloads. Its mutex is the
// pipeline's: process and the releases take it, so records go on one at a
// time whichever path they take.
type attributionHold struct {
	opts Attribution
	mu   *sync.Mutex
	wake chan struct{} // an endpoint was put in force

	held []heldFlow // by arrival (and so by until), at most opts.Capacity

	// The account, under mu.
	in, out, reattributed, expired, overflow uint64
}

func newAttributionHold(opts Attribution, mu *sync.Mutex) *attributionHold {
	if opts.Window <= 0 {
		opts.Window = DefaultAttributionWindow
	}
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultAttributionCapacity
	}
	return &attributionHold{opts: opts, mu: mu, wake: make(chan struct{}, 1)}
}

// waits reports whether a side of the enriched f is an unknown workload.
func (h *attributionHold) waits(f *api.Flow) bool {
	return h.unknownWorkload(&f.Source, f.IP.Source) || h.unknownWorkload(&f.Destination, f.IP.Destination)
}

func (h *attributionHold) unknownWorkload(ep *api.Endpoint, a netip.Addr) bool {
	return ep.Identity == uint32(identity.World) && ep.ID == 0 && !a.IsLinkLocalUnicast() && h.opts.Networks.Contains(a)
}

// take holds the enriched f if a side of it waits for its endpoint and
// there is room; false: f goes on now. The caller holds h.mu.
func (h *attributionHold) take(f *api.Flow, now time.Time) bool {
	h.in++
	if !h.waits(f) {
		h.out++
		return false
	}
	if len(h.held) >= h.opts.Capacity {
		h.overflow++
		h.out++
		return false
	}
	h.held = append(h.held, heldFlow{f: *f, until: now.Add(h.opts.Window)})
	if len(h.held) == 1 {
		h.endpointsChanged() // arms the release's timer
	}
	return true
}

// endpointsChanged wakes the releases: held records may be attributed
// now (or the first record was held: the release arms its timer).
func (h *attributionHold) endpointsChanged() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// release passes on, through deliver, the held records reg now attributes
// and those whose window ended before now (every one when all), in their
// order; it returns the end of the window of the first still held (zero:
// none).
func (h *attributionHold) release(reg *Registry, now time.Time, all bool, deliver func(*api.Flow)) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := 0
	for i := range h.held {
		hf := &h.held[i]
		reg.Enrich(&hf.f)
		attributed := !h.waits(&hf.f)
		if !attributed && !all && now.Before(hf.until) {
			h.held[kept] = *hf
			kept++
			continue
		}
		if attributed {
			h.reattributed++
		} else {
			h.expired++
		}
		deliver(&hf.f)
		h.out++
	}
	clear(h.held[kept:])
	h.held = h.held[:kept]
	if kept == 0 {
		return time.Time{}
	}
	return h.held[0].until
}

// Stage is the hold's account (account.StageAttribution); its Detail
// splits the held records by how they left.
// It takes the pipeline's lock: the counts are read between records.
func (h *attributionHold) Stage() account.Stage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return account.Stage{Name: account.StageAttribution, In: h.in, Out: h.out, Queued: uint64(len(h.held)), Dropped: map[string]uint64{},
		Detail: map[string]uint64{
			"reattributed":  h.reattributed,
			"expired":       h.expired,
			"not_held_full": h.overflow,
		}}
}

// run releases the held records when an endpoint is put in force and when
// their window ends, until ctx ends; then it passes on every record still
// held. The sources have stopped by then.
func (h *attributionHold) run(ctx context.Context, registry func() *Registry, deliver func(*api.Flow)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			h.release(registry(), time.Now(), true, deliver)
			return
		case <-h.wake:
		case <-timer.C:
		}
		if next := h.release(registry(), time.Now(), false, deliver); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}
