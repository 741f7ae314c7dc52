// Package apitest holds what tests of several packages need to feed flows
// into a collector without a kernel.
package apitest

import (
	"context"

	"github.com/periscope-dev/periscope/api"
)

// Source is a collector flow source a test drives: Run emits Canned, then
// whatever the test sends on Live, reusing one Flow as the datapath does (so
// a consumer that keeps the pointer instead of a copy is caught).
type Source struct {
	// Label is the source's Name; "test" when empty.
	Label  string
	Canned []api.Flow
	Live   chan api.Flow
}

// NewSource returns a Source emitting canned, then Live, which holds up to
// buffer flows.
func NewSource(canned []api.Flow, buffer int) *Source {
	return &Source{Canned: canned, Live: make(chan api.Flow, buffer)}
}

// Name names the source in the collector's logs and errors.
func (s *Source) Name() string {
	if s.Label == "" {
		return "test"
	}
	return s.Label
}

// Run emits the flows until ctx ends.
func (s *Source) Run(ctx context.Context, emit func(*api.Flow)) error {
	var f api.Flow
	for i := range s.Canned {
		f = s.Canned[i]
		emit(&f)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case lf := <-s.Live:
			f = lf
			emit(&f)
		}
	}
}
