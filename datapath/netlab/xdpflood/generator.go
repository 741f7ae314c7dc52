package xdpflood

import (
	"context"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// chunk is how many frames one BPF_PROG_TEST_RUN call generates (a few
// milliseconds): Run checks its context between calls.
const chunk = 1 << 15

// Generator sends a Frame's flood out of one interface. Close releases it.
type Generator struct {
	objs  xdpFloodObjects
	frame []byte
	batch uint32
}

// Options tune the kernel's run loop.
type Options struct {
	// BatchSize is how many frames the kernel builds, runs and flushes at
	// a time (BPF_PROG_TEST_RUN's batch_size); 0 is the kernel's 64.
	BatchSize uint32
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
	return g.objs.Close()
}
