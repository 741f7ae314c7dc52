package xdpflood

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// chunk is how many frames one BPF_PROG_TEST_RUN call generates (a few
// milliseconds): Run checks its context between calls.
const chunk = 1 << 15

// Generator sends a Frame's flood out of one interface. Close releases it.
type Generator struct {
	objs  xdpFloodObjects
	hold  link.Link
	frame []byte
	batch uint32
}

// Options tune the kernel's run loop.
type Options struct {
	// BatchSize is how many frames the kernel builds, runs and flushes at
	// a time (BPF_PROG_TEST_RUN's batch_size); 0 is the kernel's 64.
	BatchSize uint32
	// Hold, if not 0, is the index of an interface, in the calling
	// thread's network namespace, that receives nothing (one end of a veth
	// pair of its own, down): New attaches the program there in driver
	// mode, which keeps it in the kernel's XDP dispatcher. Otherwise every
	// BPF_PROG_TEST_RUN call of more than one repetition adds it to the
	// dispatcher and removes it again, each a text patch and an RCU grace
	// period: ≈ 25 ms a call on this project's machines, during which
	// nothing is sent (a Run call of 32Ki frames sends for ≈ 3 ms of them).
	Hold int
}

// New loads the generator for frames f redirected out of ifindex.
func New(f Frame, ifindex int, opts Options) (*Generator, error) {
	frame, err := f.Bytes()
	if err != nil {
		return nil, err
	}
	if ifindex <= 0 {
		return nil, fmt.Errorf("ifindex %d: want > 0", ifindex)
	}
	spec, err := loadXdpFlood()
	if err != nil {
		return nil, fmt.Errorf("load xdp_flood spec: %w", err)
	}
	for name, v := range map[string]uint32{
		"target_ifindex": uint32(ifindex),
		"sport_first":    uint32(f.SrcPort),
		"sport_count":    uint32(max(f.SrcPorts, 1)),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	g := &Generator{frame: frame, batch: opts.BatchSize}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, fmt.Errorf("load xdp_flood: %w", err)
	}
	if opts.Hold != 0 {
		l, err := link.AttachXDP(link.XDPOptions{Program: g.objs.XdpFlood, Interface: opts.Hold, Flags: link.XDPDriverMode})
		if err != nil {
			g.objs.Close()
			return nil, fmt.Errorf("attach xdp_flood to hold interface %d: %w", opts.Hold, err)
		}
		g.hold = l
	}
	return g, nil
}

// Run generates frames until ctx is done, on the calling goroutine's
// thread: the kernel's loop runs on that thread's CPU, and the redirect
// resolves the ifindex in that thread's network namespace, so the caller
// locks the thread (runtime.LockOSThread, or netlab's Pod.Do) and sets
// both. Frames the interface cannot take are dropped there and still count
// as generated.
func (g *Generator) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		_, err := g.objs.XdpFlood.Run(&ebpf.RunOptions{
			Data:      g.frame,
			Repeat:    chunk,
			Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			BatchSize: g.batch,
		})
		if err != nil {
			return fmt.Errorf("run xdp_flood in live-frame mode: %w", err)
		}
	}
	return nil
}

// Generated is how many frames the program has handed to the redirect.
func (g *Generator) Generated() (uint64, error) {
	var n uint64
	if err := g.objs.Generated.Get(&n); err != nil {
		return 0, fmt.Errorf("read generated: %w", err)
	}
	return n, nil
}

// Close unloads the program.
func (g *Generator) Close() error {
	var err error
	if g.hold != nil {
		err = g.hold.Close()
	}
	return errors.Join(err, g.objs.Close())
}

// Paced is what RunPaced offered.
type Paced struct {
	// Frames is how many frames the generator sent (each one redirected;
	// whether the receiving interface took it is the interface's count).
	Frames uint64
	// Elapsed is the time from the first call to the end.
	Elapsed time.Duration
	// Behind is how many frames of the schedule were given up because the
	// generator fell more than maxBurst frames behind it (descheduled,
	// interrupted): the rate offered is Frames / Elapsed, not the rate
	// asked for.
	Behind uint64
}

// Rate is the rate actually offered, in frames per second.
func (p Paced) Rate() float64 { return float64(p.Frames) / p.Elapsed.Seconds() }

// maxBurst is how many missed frames RunPaced sends back to back when it
// falls behind its schedule (one batch: fewer than a veth's 256-frame
// receive ring); the others are given up.
const maxBurst = 64

// RunPaced floods at a fixed rate until ctx is done: the program sends a
// frame only when one is due (one every 1/rate seconds from the first) and
// drops the repetitions in between, so frames leave evenly spaced, at the
// rate asked whatever the receiver does (a receiver that cannot keep up
// fills its queue and refuses frames; the generator does not slow down).
// It keeps a CPU busy: call it on a thread pinned to a CPU of its own. Each
// call of more than one repetition swaps the program in and out of the XDP
// dispatcher (milliseconds, during which nothing is sent) unless it is
// attached somewhere: give Options.Hold.
func (g *Generator) RunPaced(ctx context.Context, rate float64) (Paced, error) {
	if rate <= 0 {
		return Paced{}, fmt.Errorf("rate %v: want > 0", rate)
	}
	interval := uint64(1e9 / rate)
	if interval == 0 {
		return Paced{}, fmt.Errorf("rate %v: over one frame per nanosecond", rate)
	}
	var p Paced
	gen0, err := g.Generated()
	if err != nil {
		return p, err
	}
	var behind0 uint64
	for _, set := range []struct {
		v   *ebpf.Variable
		val uint64
	}{{g.objs.NextDue, 0}, {g.objs.MaxLagNs, maxBurst * interval}, {g.objs.IntervalNs, interval}} {
		if err := set.v.Set(set.val); err != nil {
			return p, fmt.Errorf("set pacing: %w", err)
		}
	}
	if err := g.objs.Behind.Get(&behind0); err != nil {
		return p, fmt.Errorf("read behind: %w", err)
	}
	start := time.Now()
	runErr := g.Run(ctx)
	p.Elapsed = time.Since(start)
	if err := g.objs.IntervalNs.Set(uint64(0)); err != nil && runErr == nil {
		runErr = fmt.Errorf("unset pacing: %w", err)
	}
	gen1, err := g.Generated()
	if err != nil {
		return p, errors.Join(runErr, err)
	}
	var behind1 uint64
	if err := g.objs.Behind.Get(&behind1); err != nil {
		return p, errors.Join(runErr, fmt.Errorf("read behind: %w", err))
	}
	p.Frames, p.Behind = gen1-gen0, behind1-behind0
	return p, runErr
}
