package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/periscope-dev/periscope/api"
)

// Source produces flow records: the kernel datapath (*datapath.Datapath),
// and next to it producers of L7 records (an access-log stream, a DNS
// proxy). Run calls emit from one goroutine, with a Flow that is valid only
// during the call (a source may reuse it for the next record), and returns
// when ctx is done: nil or ctx's error, both fine. Any other error ends the
// collector.
//
// A source fills what it knows. The kernel datapath leaves the endpoints to
// the collector, which finds them by interface index and by IP; a source
// without an interface gives the addresses, and for an L7 record also the
// TrafficDirection, which the collector then keeps (Registry.Enrich).
type Source interface {
	// Name says which source it is in logs and errors: "datapath", "envoy".
	Name() string
	Run(ctx context.Context, emit func(*api.Flow)) error
}

// runSources runs every source in its own goroutine until all have returned,
// feeding their flows through process one at a time. The first source that
// fails cancels the others; the error names every source that failed. A
// source ending with its context is no failure, nor is one that returns nil
// early (the others go on).
func (c *Collector) runSources(ctx context.Context, process func(*api.Flow)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pipe *sync.Mutex
	if len(c.opts.Sources) > 1 || c.hold != nil {
		pipe = &c.pipeMu
	}
	emit := serialize(process, pipe)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, src := range c.opts.Sources {
		wg.Go(func() {
			err := src.Run(ctx, emit)
			switch {
			case err == nil:
				if ctx.Err() == nil {
					c.log.Info("flow source ended", "source", src.Name())
				}
			case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
			default:
				mu.Lock()
				errs = append(errs, fmt.Errorf("flow source %s: %w", src.Name(), err))
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serialize makes process safe to call from several goroutines, one call
// at a time under mu. A nil mu (one source, nothing else feeding the
// pipeline) takes no lock: the kernel's path stays as it was.
func serialize(process func(*api.Flow), mu *sync.Mutex) func(*api.Flow) {
	if mu == nil {
		return process
	}
	return func(f *api.Flow) {
		mu.Lock()
		process(f)
		mu.Unlock()
	}
}
