package apitest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Runner is a part with a run loop that says when it serves: a collector,
// a relay.
type Runner interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// readyTimeout bounds how long Start waits for a Runner to be ready.
const readyTimeout = 10 * time.Second

// Start runs r until the test ends, failing the test if Run returns an
// error, and returns once r is ready. stop ends r early (and waits for it);
// it is idempotent and also run by the test's cleanup.
func Start(tb testing.TB, name string, r Runner) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("%s: Run: %v", name, err)
			}
		})
	}
	tb.Cleanup(stop)
	select {
	case <-r.Ready():
	case err := <-done:
		done <- err // for stop
		tb.Fatalf("%s: Run ended before it was ready: %v", name, err)
	case <-time.After(readyTimeout):
		tb.Fatalf("%s: not ready after %v", name, readyTimeout)
	}
	return stop
}
