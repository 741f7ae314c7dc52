package datapath

import (
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Config says how to load the datapath. Zero fields take the defaults below.
type Config struct {
	PinPath        string        // bpffs directory for maps and links; default "/sys/fs/bpf/periscope"
	RingBufferSize int           // bytes, a power of two multiple of the page size; default 8 MiB
	ReportInterval time.Duration // periodic report of long flows; default 5s
	IdleTimeout    time.Duration // UDP/ICMP/unfinished-TCP flows with no packet for this long are ended; default 30s
	CloseGrace     time.Duration // TCP flows with FIN both ways or RST are ended after this much idle; default 1s
	// ProxyIdleTimeout is IdleTimeout for the open TCP connections of a
	// transparent redirect (the client's to the proxy, the proxy's to
	// the upstream); default 10m. Forgetting such a live connection would
	// stop steering it, and its next packet would go direct (and be
	// dropped): the proxy closes idle connections well before.
	ProxyIdleTimeout time.Duration
	FlowTableSize    int          // LRU entries; default 262144
	Logger           *slog.Logger // default slog.Default()
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
	DefaultRingBufferSize = 8 << 20
	DefaultReportInterval = 5 * time.Second
	DefaultIdleTimeout    = 30 * time.Second
	DefaultCloseGrace     = time.Second
	DefaultProxyIdle      = 10 * time.Minute
	DefaultFlowTableSize  = 262144
)

// withDefaults fills zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	if c.PinPath == "" {
		c.PinPath = DefaultPinPath
	}
	if c.RingBufferSize == 0 {
		c.RingBufferSize = DefaultRingBufferSize
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
	if c.ReportInterval < 0 || c.IdleTimeout < 0 || c.CloseGrace < 0 {
		return c, fmt.Errorf("negative interval in config")
	}
	if c.FlowTableSize == 0 {
		c.FlowTableSize = DefaultFlowTableSize
	}
	if c.FlowTableSize < 0 {
		return c, fmt.Errorf("flow table size %d: want > 0", c.FlowTableSize)
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
