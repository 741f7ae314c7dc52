package kubernetes

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/kubernetes/kubetest"
)

// One API server serves every test of the package; each test works in
// namespaces and on a node name of its own.
var shared struct {
	once   sync.Once
	server *kubetest.Server
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop API server:", err)
		}
	}
	os.Exit(code)
}

// apiServer returns the package's API server, started on first use.
func apiServer(t *testing.T) (*kubetest.Server, kubernetes.Interface) {
	t.Helper()
	if _, _, err := kubetest.Binaries(); err != nil {
		labtest.SkipOrFail(t, err.Error())
	}
	shared.once.Do(func() {
		shared.server, shared.err = kubetest.Start(context.Background(), kubetest.Options{})
	})
	if shared.err != nil {
		t.Fatalf("start API server: %v", shared.err)
	}
	cs, err := kubernetes.NewForConfig(shared.server.Config)
	if err != nil {
		t.Fatal(err)
	}
	return shared.server, cs
}

// testName is a DNS label made from the test's name.
func testName(t *testing.T, suffix string) string {
	n := strings.ToLower(t.Name())
	n = strings.NewReplacer("/", "-", "_", "-").Replace(n)
	if len(n) > 40 {
		n = n[:40]
	}
	return strings.Trim(n, "-") + "-" + suffix
}

// events collects what a sink receives.
type events[T any] struct {
	ch chan T
}

func newEvents[T any]() *events[T] { return &events[T]{ch: make(chan T, 100000)} }

// wait returns the first event (in order, discarding others) for which
// match is true, or fails the test after timeout.
func (e *events[T]) wait(t *testing.T, what string, timeout time.Duration, match func(T) bool) T {
	t.Helper()
	deadline := time.After(timeout)
	var seen []T
	for {
		select {
		case ev := <-e.ch:
			if match(ev) {
				return ev
			}
			seen = append(seen, ev)
		case <-deadline:
			t.Fatalf("no %s within %v; saw %+v", what, timeout, seen)
		}
	}
}

// none fails if an event matching match arrives within d.
func (e *events[T]) none(t *testing.T, what string, d time.Duration, match func(T) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-e.ch:
			if match(ev) {
				t.Fatalf("unexpected %s: %+v", what, ev)
			}
		case <-deadline:
			return
		}
	}
}

// runPods starts a pod watcher for node until the test ends.
func runPods(t *testing.T, cs kubernetes.Interface, opts Options) (*Pods, *events[discovery.EndpointEvent]) {
	t.Helper()
	p, err := NewPods(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	evs := newEvents[discovery.EndpointEvent]()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, discovery.EndpointFunc(func(ev discovery.EndpointEvent) { evs.ch <- ev })) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pods watcher: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("pods watcher did not stop within 30s")
		}
	})
	return p, evs
}
