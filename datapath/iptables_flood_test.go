package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/xdpflood"
)

// vsPlacement is where the flood and the allowed round trips run.
type vsPlacement struct {
	name       string
	flood, rtt int // CPUs
}

// The flood's CPU, and the CPU of the allowed client and server: apart,
// the round trips pay only for what the flood's CPU shares with theirs;
// shared, they wait for the flood's batches on one CPU.
var (
	vsApart  = vsPlacement{name: "apart", flood: 0, rtt: 1}
	vsShared = vsPlacement{name: "shared", flood: 0, rtt: 0}
)

// newFlood loads the generator of the flooder's flood: 64-byte UDP frames
// from the flooder's MAC and denied address (floodSrc) to the server's, vsFloodPorts source
// ports cycled, out of the flooder's eth0. GRO on the flooder's host veth
// lets it take the redirected frames (veth's ndo_xdp_xmit needs NAPI on
// the receiving end) without an XDP program there: the frames then take the
// flooder's own packets' path (host veth TC ingress, bridge, the server's
// host veth TC egress, the server's netns), the same in every mode. With
// hold, the generator's program is also attached to a veth pair of its own
// in the flooder's netns (down: it receives nothing), which keeps it in the
// XDP dispatcher: without it each BPF_PROG_TEST_RUN call spends ≈ 25 ms
// adding and removing it, sending nothing (see xdpflood.Options.Hold).
func (l *vsLab) newFlood(b *testing.B, hold bool) *xdpflood.Generator {
	b.Helper()
	if err := netlab.SetGRO(l.flooder.HostVeth.Name, true); err != nil {
		b.Fatal(err)
	}
	src, err := podMAC(l.flooder)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := podMAC(l.server)
	if err != nil {
		b.Fatal(err)
	}
	var g *xdpflood.Generator
	err = l.flooder.Do(func() error {
		var opts xdpflood.Options
		if hold {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hold0"}, PeerName: "hold1"}
			if err := netlink.LinkAdd(v); err != nil {
				return fmt.Errorf("add hold veth: %w", err)
			}
			opts.Hold = v.Attrs().Index
			if opts.Hold == 0 {
				h, err := netlink.LinkByName("hold0")
				if err != nil {
					return fmt.Errorf("find hold veth: %w", err)
				}
				opts.Hold = h.Attrs().Index
			}
		}
		var err error
		g, err = xdpflood.New(xdpflood.Frame{
			SrcMAC: src, DstMAC: dst, Src: l.floodSrc, Dst: l.server.IPv4,
			SrcPort: vsFloodFirstPort, SrcPorts: vsFloodPorts, DstPort: vsFloodPort,
		}, l.flooder.Veth.Index, opts)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() }) // the hold veth goes with the flooder's netns
	return g
}

// podMAC is the MAC address of the pod's eth0.
func podMAC(p *netlab.Pod) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := p.Do(func() error {
		eth, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = eth.HardwareAddr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mac of %s's eth0: %w", p.Name, err)
	}
	return mac, nil
}

// runFlood floods on a thread pinned to cpu, in the flooder's netns, until
// ctx is done, and returns the thread's CPU time: the generator's loop and
// the softirqs that deliver its batches, run in its context on
// local_bh_enable (without CONFIG_IRQ_TIME_ACCOUNTING they are charged to
// it).
func (l *vsLab) runFlood(ctx context.Context, f *xdpflood.Generator, cpu int) (time.Duration, error) {
	var used time.Duration
	err := onCPU(cpu, func() error {
		return l.flooder.Do(func() error {
			start, err := threadCPU()
			if err != nil {
				return err
			}
			if err := f.Run(ctx); err != nil {
				return err
			}
			end, err := threadCPU()
			used = end - start
			return err
		})
	})
	return used, err
}

// threadCPU is the calling thread's CPU time.
func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("thread cpu time: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// ksoftirqdCPU is the CPU time of ksoftirqd on cpu (sum_exec_runtime from
// schedstat): softirq work the kernel defers from the flood's thread runs
// there.
func ksoftirqdCPU(cpu int) (time.Duration, error) {
	comm := fmt.Sprintf("ksoftirqd/%d", cpu)
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find %s: %w", comm, err)
	}
	for _, d := range dirs {
		c, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		return taskCPU(pid)
	}
	return 0, fmt.Errorf("no %s in /proc", comm)
}

// taskCPU is the CPU time of the task (thread) pid: sum_exec_runtime from
// its schedstat.
func taskCPU(pid int) (time.Duration, error) {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "schedstat"))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	f := strings.Fields(string(st))
	if len(f) == 0 {
		return 0, fmt.Errorf("schedstat of %d %q: empty", pid, st)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat of %d %q: %w", pid, st, err)
	}
	return time.Duration(ns), nil
}

// vsCounts are the flood's counters at one instant.
type vsCounts struct {
	generated, delivered uint64
	dropped              map[tcFlowFlowKey]uint64
	ksoftirqd            time.Duration
}

func (l *vsLab) counts(b *testing.B, f *xdpflood.Generator) vsCounts {
	b.Helper()
	gen, err := f.Generated()
	if err != nil {
		b.Fatal(err)
	}
	link, err := netlink.LinkByName(l.flooder.HostVeth.Name)
	if err != nil {
		b.Fatalf("find %s: %v", l.flooder.HostVeth.Name, err)
	}
	soft, err := ksoftirqdCPU(vsApart.flood)
	if err != nil {
		b.Fatal(err)
	}
	return vsCounts{generated: gen, delivered: link.Attrs().Statistics.RxPackets, dropped: l.droppedCount(b), ksoftirqd: soft}
}

// vsRates are packets per second of one flood round, and dropped packets
// per second of CPU the flood used (its thread and ksoftirqd on its CPU):
// the other processes of a shared machine change the first, hardly the
// second.
type vsRates struct {
	generated, delivered, dropped float64
	droppedPerCPU, cpuShare       float64
}

// floodRound floods the server for vsFloodRound and returns the rates of
// frames generated, received by the flooder's host veth, and dropped by
// the enforcer.
func (l *vsLab) floodRound(b *testing.B, ctx context.Context, f *xdpflood.Generator) vsRates {
	b.Helper()
	before := l.counts(b, f)
	fctx, cancel := context.WithTimeout(ctx, vsFloodRound)
	defer cancel()
	start := time.Now()
	used, err := l.runFlood(fctx, f, vsApart.flood)
	if err != nil {
		b.Fatalf("flood: %v", err)
	}
	secs := time.Since(start).Seconds()
	time.Sleep(50 * time.Millisecond) // the last batch is dropped by now
	after := l.counts(b, f)
	var drops uint64
	for k, v := range after.dropped {
		drops += v - before.dropped[k] // a new key starts from 0
	}
	cpu := (used + after.ksoftirqd - before.ksoftirqd).Seconds()
	return vsRates{
		generated:     float64(after.generated-before.generated) / secs,
		delivered:     float64(after.delivered-before.delivered) / secs,
		dropped:       float64(drops) / secs,
		droppedPerCPU: float64(drops) / cpu,
		cpuShare:      cpu / secs,
	}
}

// onCPU runs fn on a thread locked to the calling goroutine and pinned to
// cpu, and gives the thread its former affinity back after.
func onCPU(cpu int, fn func() error) error {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get affinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("pin to cpu %d: %w", cpu, err)
	}
	defer func() {
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		} // else the pinned thread dies with its goroutine
	}()
	return fn()
}

// onCPUNice runs fn as onCPU does, the thread at nice value nice meanwhile
// (0: as it is).
func onCPUNice(cpu, nice int, fn func() error) error {
	return onCPU(cpu, func() error {
		if nice == 0 {
			return fn()
		}
		tid := unix.Gettid()
		old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			return fmt.Errorf("getpriority: %w", err)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("setpriority %d: %w", nice, err)
		}
		err = fn()
		// The raw syscall returns 20 - nice.
		return errors.Join(err, unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old))
	})
}
