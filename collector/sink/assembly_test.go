package sink

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api"
)

// eventLog records what the test's sinks did, in order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (j *eventLog) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *eventLog) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// testPlugin is a Plugin whose Open is a function of the test's.
type testPlugin struct {
	name string
	open func(env Env) (*Part, error)
}

func (p testPlugin) Name() string                                   { return p.name }
func (testPlugin) AddFlags(*pflag.FlagSet, FlagScope)               {}
func (p testPlugin) Open(_ context.Context, env Env) (*Part, error) { return p.open(env) }

// spooledPlugin opens a queue over s spooled in dir, whose background work
// and Close are journalled; Close checks that the queue has drained and its
// spool was closed before.
func spooledPlugin(t *testing.T, name string, s *recordSink, dir string, want int, j *eventLog) Plugin {
	return testPlugin{name: name, open: func(env Env) (*Part, error) {
		// Nothing is written before the queue drains at the stop, and that
		// takes a while.
		q, err := NewQueue(delayedSink{s, 100 * time.Millisecond}, QueueOptions{FlushInterval: time.Hour, BatchSize: 8192, SpoolDir: dir, Logger: quietLogger()})
		if err != nil {
			return nil, err
		}
		j.add(name + " opened")
		return &Part{
			Queues: []*Queue{q},
			Run:    func(ctx context.Context) { <-ctx.Done(); j.add(name + " run ended") },
			Close: func(context.Context) error {
				if ports, _ := s.got(); len(ports) != want {
					t.Errorf("%s closed with %d flows written, want %d", name, len(ports), want)
				}
				if spoolFree(dir) {
					j.add(name + " closed")
				} else {
					j.add(name + " closed before its spool")
				}
				return nil
			},
		}, nil
	}}
}

// delayedSink is a recordSink whose writes take d.
type delayedSink struct {
	*recordSink
	d time.Duration
}

func (s delayedSink) Write(ctx context.Context, batch []api.Flow) error {
	time.Sleep(s.d)
	return s.recordSink.Write(ctx, batch)
}

// spoolFree says whether no queue holds dir.
func spoolFree(dir string) bool {
	q, err := NewQueue(&recordSink{name: "probe"}, QueueOptions{SpoolDir: dir, Logger: quietLogger()})
	if err != nil {
		return false
	}
	q.Close()
	return true
}

func TestTheAssemblyDrainsThenClosesSpoolsThenEachSinkInOrder(t *testing.T) {
	const n = 5000
	j := &eventLog{}
	s := &recordSink{name: "first"}
	dir := t.TempDir()
	var closeCtxLeft time.Duration
	last := testPlugin{name: "last", open: func(Env) (*Part, error) {
		return &Part{Close: func(ctx context.Context) error {
			deadline, _ := ctx.Deadline()
			closeCtxLeft = time.Until(deadline)
			<-ctx.Done() // an export that does not finish: bounded by ShutdownTimeout
			j.add("last closed")
			return errors.New("last: shut down: " + ctx.Err().Error())
		}}, nil
	}}
	off := testPlugin{name: "off", open: func(Env) (*Part, error) { return nil, nil }}
	a, err := Open(context.Background(), Env{Logger: quietLogger(), ShutdownTimeout: 200 * time.Millisecond},
		spooledPlugin(t, "first", s, dir, n, j), off, last)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = a.RunWith(context.Background(), func(context.Context) error {
		for i := range n {
			a.Consume(flowWithPort(uint16(i)))
		}
		j.add("pipeline stopped")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "last: shut down") {
		t.Errorf("RunWith returned %v, want the last sink's Close error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("RunWith took %v: a sink's Close is not bounded", took)
	}
	if closeCtxLeft <= 0 || closeCtxLeft > 200*time.Millisecond {
		t.Errorf("Close had %v left, want at most ShutdownTimeout (200ms)", closeCtxLeft)
	}
	ports, _ := s.got()
	checkInOrder(t, ports, n)
	want := []string{"first opened", "pipeline stopped", "first run ended", "first closed", "last closed"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if st := a.Queues()[0].Stats(); st != (Stats{Offered: n, Written: n}) {
		t.Errorf("queue stats %+v, want all %d written", st, n)
	}
}

func TestAnErrorWhileOpeningClosesWhatWasOpened(t *testing.T) {
	tests := []struct {
		name    string
		failing Plugin
		wantErr string
	}{
		{
			name:    "a sink that fails to open",
			failing: testPlugin{name: "bad", open: func(Env) (*Part, error) { return nil, errors.New("--bad: refused") }},
			wantErr: "--bad: refused",
		},
		{
			name: "a sink that serves what another one serves",
			failing: testPlugin{name: "twin", open: func(Env) (*Part, error) {
				return &Part{Handlers: map[string]http.Handler{"GET /metrics": http.NotFoundHandler()}}, nil
			}},
			wantErr: "sink twin: GET /metrics is served by another sink",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &eventLog{}
			dir := t.TempDir()
			first := spooledPlugin(t, "first", &recordSink{name: "first"}, dir, 0, j)
			serving := testPlugin{name: "serving", open: func(Env) (*Part, error) {
				return &Part{Handlers: map[string]http.Handler{"GET /metrics": http.NotFoundHandler()},
					Close: func(context.Context) error { j.add("serving closed"); return nil }}, nil
			}}
			never := testPlugin{name: "never", open: func(Env) (*Part, error) { j.add("never opened"); return nil, nil }}
			_, err := Open(context.Background(), Env{Logger: quietLogger()}, first, serving, tt.failing, never)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Open returned %v, want %q", err, tt.wantErr)
			}
			want := []string{"first opened", "first closed", "serving closed"}
			if got := j.get(); !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
			if !spoolFree(dir) {
				t.Error("the first sink's spool is still held")
			}
		})
	}
}

func TestEverySinkSeesEveryQueueAndHandler(t *testing.T) {
	var watched []string
	watcher := testPlugin{name: "metrics", open: func(Env) (*Part, error) {
		return &Part{
			Observers: []Observer{&countObserver{}},
			Handlers:  map[string]http.Handler{"GET /metrics": http.NotFoundHandler()},
			WatchQueues: func(qs []*Queue) {
				for _, q := range qs {
					watched = append(watched, q.Name())
				}
			},
		}, nil
	}}
	a, err := Open(context.Background(), Env{Logger: quietLogger()}, watcher,
		Queued(&recordSink{name: "one"}, QueueOptions{}), Queued(&recordSink{name: "two"}, QueueOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !slices.Equal(watched, []string{"one", "two"}) {
		t.Errorf("the metrics watch queues %q, want the queues of every sink, opened before or after", watched)
	}
	if h := a.Handlers(); len(h) != 1 || h["GET /metrics"] == nil {
		t.Errorf("handlers %v", h)
	}
}
