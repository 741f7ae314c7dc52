package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
)

// Assembly is the opened sinks of a collector behind one Fanout: their
// observers and queues, their HTTP handlers, and what runs and closes with
// them. Create it with Open; run it with Start (or RunWith); it is the
// collector's Sink (Consume).
type Assembly struct {
	env      Env
	parts    []namedPart // in the order opened
	queues   []*Queue
	fanout   *Fanout
	handlers map[string]http.Handler

	closeOnce sync.Once
	closeErr  error
}

type namedPart struct {
	name string
	*Part
}

// Open opens every plugin that its flags ask for, in order, and puts their
// observers and queues behind one Fanout. On error, what was opened is
// closed again.
func Open(ctx context.Context, env Env, plugins ...Plugin) (_ *Assembly, err error) {
	if env.Logger == nil {
		env.Logger = slog.Default()
	}
	if env.ShutdownTimeout <= 0 {
		env.ShutdownTimeout = DefaultShutdownTimeout
	}
	a := &Assembly{env: env, handlers: map[string]http.Handler{}}
	defer func() {
		if err != nil {
			if cerr := a.Close(); cerr != nil {
				env.Logger.Warn("close the sinks opened before the error", "err", cerr)
			}
		}
	}()
	var observers []Observer
	for _, p := range plugins {
		part, err := p.Open(ctx, env)
		if err != nil {
			return nil, err
		}
		if part == nil {
			continue
		}
		a.parts = append(a.parts, namedPart{p.Name(), part})
		observers = append(observers, part.Observers...)
		a.queues = append(a.queues, part.Queues...)
		for pattern, h := range part.Handlers {
			if _, taken := a.handlers[pattern]; taken {
				return nil, fmt.Errorf("sink %s: %s is served by another sink", p.Name(), pattern)
			}
			a.handlers[pattern] = h
		}
	}
	for _, p := range a.parts {
		if p.WatchQueues != nil {
			p.WatchQueues(a.queues)
		}
	}
	a.fanout = NewFanout(a.queues, observers...)
	return a, nil
}

// Consume offers f to every observer and queue (see Fanout.Offer); it makes
// the Assembly the collector's Sink.
func (a *Assembly) Consume(f *api.Flow) { a.fanout.Offer(f) }

// Handlers returns a new map of the sinks' HTTP handlers, by pattern, for
// the caller to serve (and add its own to).
func (a *Assembly) Handlers() map[string]http.Handler { return maps.Clone(a.handlers) }

// Queues returns the sinks' queues.
func (a *Assembly) Queues() []*Queue { return a.queues }

// Stages returns the accounts of the sinks' queues (account.SinkStage).
func (a *Assembly) Stages() []account.Stage {
	stages := make([]account.Stage, 0, len(a.queues))
	for _, q := range a.queues {
		stages = append(stages, q.Stats().Stage(account.SinkStage(q.Name())))
	}
	return stages
}

// Start runs the queues and the sinks' background work (Part.Run). stop
// ends them: the queues write what they hold (see Queue.Run), then
// everything closes (see Close); it returns Close's error and may be called
// more than once. ctx gives the sinks its values, not its end: they run
// until stop, so that nothing offered before stop is lost.
func (a *Assembly) Start(ctx context.Context) (stop func() error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { a.fanout.Run(sctx) })
	for _, p := range a.parts {
		if p.Run != nil {
			wg.Go(func() { p.Run(sctx) })
		}
	}
	return sync.OnceValue(func() error {
		cancel()
		wg.Wait()
		return a.Close()
	})
}

// RunWith runs the sinks (Start) while run runs: run is the pipeline, and
// when it returns no flow comes any more, so the sinks then drain and close.
// It returns run's error and the sinks'.
func (a *Assembly) RunWith(ctx context.Context, run func(context.Context) error) error {
	stop := a.Start(ctx)
	err := run(ctx)
	return errors.Join(err, stop())
}

// Close closes what the sinks opened: first the queues' spools, then each
// sink (Part.Close) in the order they were opened, each within
// Env.ShutdownTimeout. Call it once the queues have drained (Start's stop
// does), or instead of Start. It closes once; later calls return the same
// error.
func (a *Assembly) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		for _, q := range a.queues {
			if err := q.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s spool: %w", q.Name(), err))
			}
		}
		for _, p := range a.parts {
			if p.Close == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), a.env.ShutdownTimeout)
			if err := p.Close(ctx); err != nil {
				errs = append(errs, err)
			}
			cancel()
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
