package datapath

import (
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Config says how to load the datapath. Zero fields take the defaults below;
// the kernel maps' sizes derive from FlowBudget unless set (sizes.go).
type Config struct {
	PinPath        string        // bpffs directory for maps and links; default "/sys/fs/bpf/periscope"
	FlowBudget     int           // connections tracked at once that the maps are sized for; default 16384
	RingBufferSize int           // bytes, a power of two multiple of the page size; default from FlowBudget (2 MiB)
	FlowTableSize  int           // LRU entries; default 2 × FlowBudget
	SockTableSize  int           // sockets followed until they close (LRU entries); default 2 × FlowBudget
	ReportInterval time.Duration // periodic report of long flows; default 5s
	IdleTimeout    time.Duration // UDP/ICMP/unfinished-TCP flows with no packet for this long are ended; default 30s
	CloseGrace     time.Duration // TCP flows with FIN both ways or RST are ended after this much idle; default 1s
	// ProxyIdleTimeout is IdleTimeout for the open TCP connections of a
	// transparent redirect (the client's to the proxy, the proxy's to
	// the upstream); default 10m. Forgetting such a live connection would
	// stop steering it, and its next packet would go direct (and be
	// dropped): the proxy closes idle connections well before.
	ProxyIdleTimeout time.Duration
	// ReadInterval is how often Run drains the ring buffer: events wait in
	// it at most this long, unless a quarter of it fills first (which wakes
	// the reader at once). Default 10ms.
	ReadInterval time.Duration
	Logger       *slog.Logger // default slog.Default()
	// HostDevices name the host interfaces: AttachInterface gives them the
	// host programs, which judge the host endpoint's policy (host
	// policies) from the host's side; every other interface is a pod's.
	HostDevices []string

	// loadBytesOnly (tests) makes the flow programs read every header with
	// bpf_skb_load_bytes, the path of headers outside the linear data.
	loadBytesOnly bool
}

// Defaults of Config.
const (
	DefaultPinPath        = "/sys/fs/bpf/periscope"
	DefaultFlowBudget     = 16384
	DefaultReportInterval = 5 * time.Second
	DefaultIdleTimeout    = 30 * time.Second
	DefaultCloseGrace     = time.Second
	DefaultProxyIdle      = 10 * time.Minute
	DefaultReadInterval   = 10 * time.Millisecond
)

// withDefaults fills zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	if c.PinPath == "" {
		c.PinPath = DefaultPinPath
	}
	if c.FlowBudget == 0 {
		c.FlowBudget = DefaultFlowBudget
	}
	if c.FlowBudget < 0 {
		return c, fmt.Errorf("flow budget %d: want > 0", c.FlowBudget)
	}
	if c.RingBufferSize == 0 {
		c.RingBufferSize = ringBufferFor(c.FlowBudget)
	}
	page := os.Getpagesize()
	if c.RingBufferSize < page || c.RingBufferSize%page != 0 || c.RingBufferSize&(c.RingBufferSize-1) != 0 {
		return c, fmt.Errorf("ring buffer size %d: want a power of two multiple of the page size %d", c.RingBufferSize, page)
	}
	if c.ReportInterval == 0 {
		c.ReportInterval = DefaultReportInterval
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.CloseGrace == 0 {
		c.CloseGrace = DefaultCloseGrace
	}
	if c.ProxyIdleTimeout == 0 {
		c.ProxyIdleTimeout = DefaultProxyIdle
	}
	if c.ReadInterval == 0 {
		c.ReadInterval = DefaultReadInterval
	}
	if c.ReportInterval < 0 || c.IdleTimeout < 0 || c.CloseGrace < 0 || c.ReadInterval < 0 {
		return c, fmt.Errorf("negative interval in config")
	}
	if c.FlowTableSize == 0 {
		c.FlowTableSize = flowTableFor(c.FlowBudget)
	}
	if c.FlowTableSize < 0 {
		return c, fmt.Errorf("flow table size %d: want > 0", c.FlowTableSize)
	}
	if c.SockTableSize == 0 {
		c.SockTableSize = sockTableFor(c.FlowBudget)
	}
	if c.SockTableSize < 0 {
		return c, fmt.Errorf("socket table size %d: want > 0", c.SockTableSize)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// sweepEvery is how often the sweeper looks for ended flows.
func (c Config) sweepEvery() time.Duration {
	d := min(c.CloseGrace, c.IdleTimeout) / 2
	return max(50*time.Millisecond, min(d, time.Second))
}

// wakeupBytes is how full the ring gets before an event wakes the reader
// (events.h): a quarter of it, so it never fills between two reads unless
// the reader stalls.
func (c Config) wakeupBytes() uint64 { return uint64(c.RingBufferSize / 4) }
