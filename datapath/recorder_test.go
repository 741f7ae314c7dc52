package datapath

import (
	"context"
	"sync"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// flowRecorder runs a Datapath in the background, as the collector does,
// and keeps a copy of the flows a test wants.
type flowRecorder struct {
	mu     sync.Mutex
	flows  []api.Flow
	cancel context.CancelFunc
	done   chan error
}

// recordFlows runs d until Stop (or the test's end), keeping every flow
// keep accepts; keep nil keeps them all.
func recordFlows(t testing.TB, d *Datapath, keep func(*api.Flow) bool) *flowRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &flowRecorder{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- d.Run(ctx, func(f *api.Flow) {
			if keep == nil || keep(f) {
				r.mu.Lock()
				r.flows = append(r.flows, *f)
				r.mu.Unlock()
			}
		})
	}()
	t.Cleanup(cancel)
	return r
}

// Flows is a copy of the flows kept so far.
func (r *flowRecorder) Flows() []api.Flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]api.Flow(nil), r.flows...)
}

// Stop ends Run, fails the test if Run failed, and returns the flows kept.
func (r *flowRecorder) Stop(t testing.TB) []api.Flow {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("run: %v", err)
	}
	return r.Flows()
}
