package sink

import (
	"context"

	"github.com/spf13/pflag"
)

// Queued returns a Plugin, without flags, that puts the open sink s behind
// a queue with opts (whose Logger defaults to the Env's): for tests,
// benchmarks and programs that open their sinks themselves. s stays open
// when the assembly closes.
func Queued(s Sink, opts QueueOptions) Plugin { return queued{s, opts} }

type queued struct {
	s    Sink
	opts QueueOptions
}

func (q queued) Name() string                     { return q.s.Name() }
func (queued) AddFlags(*pflag.FlagSet, FlagScope) {}

func (q queued) Open(_ context.Context, env Env) (*Part, error) {
	o := q.opts
	if o.Logger == nil {
		o.Logger = env.Logger
	}
	queue, err := NewQueue(q.s, o)
	if err != nil {
		return nil, err
	}
	return &Part{Queues: []*Queue{queue}}, nil
}

// Opened returns a Plugin, without flags, whose Open returns part: for a
// sink opened already, as Queued but with all of a Part's say.
func Opened(name string, part *Part) Plugin { return opened{name, part} }

type opened struct {
	name string
	part *Part
}

func (o opened) Name() string                             { return o.name }
func (opened) AddFlags(*pflag.FlagSet, FlagScope)         {}
func (o opened) Open(context.Context, Env) (*Part, error) { return o.part, nil }
