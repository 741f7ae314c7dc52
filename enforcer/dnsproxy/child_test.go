package dnsproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// runChild is the proxy child process of the lab tests: it serves until
// its stdin closes, writing records as JSON lines, then saves its cache.
func runChild(cfgJSON string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	cache, err := fqdn.New(fqdn.Options{StatePath: cfg.StatePath, MinTTL: cfg.MinTTL})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tab := dnsmatch.NewTable()
	if err := tab.Replace(cfg.Rules); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := New(Options{Listen: cfg.Listen, Endpoints: endpointMap(cfg.Endpoints), Policy: tab, Cache: cache, Timeout: cfg.Timeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	write := func(l childLine) {
		b, _ := json.Marshal(l)
		mu.Lock()
		out.Write(append(b, '\n'))
		out.Flush()
		mu.Unlock()
	}
	write(childLine{Ready: p.Addrs()})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- cache.Run(ctx) }()
	if cfg.CPUProfile != "" {
		if f, err := os.Create(cfg.CPUProfile); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	emit := func(f *api.Flow) { write(childLine{Flow: f}) }
	if cfg.DiscardFlows {
		emit = func(*api.Flow) {}
	}
	err = p.Run(ctx, emit)
	s := p.Stats()
	write(childLine{Stats: &s})
	if err == nil {
		err = <-cacheDone
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
