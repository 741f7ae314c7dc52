package metrics

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
)

// Flags are the metric model's flags, which its exporters share:
// --metrics-options. As a sink.Plugin it opens nothing, but fails a bad
// value even when no exporter is on.
type Flags struct {
	options string
}

// NewFlags returns the flags, unset.
func NewFlags() *Flags { return &Flags{} }

// Name implements sink.Plugin.
func (*Flags) Name() string { return "metrics" }

// AddFlags implements sink.Plugin: --metrics-options, with all flags only.
func (fl *Flags) AddFlags(f *pflag.FlagSet, scope sink.FlagScope) {
	if scope != sink.AllFlags {
		return
	}
	f.StringVar(&fl.options, "metrics-options", "",
		`traffic, HTTP and DNS metric contexts, as Hubble's: "source_context=workload;destination_context=namespace;max_series=1000"`)
}

// Options parses --metrics-options.
func (fl *Flags) Options() (Options, error) {
	o, err := ParseOptions(fl.options)
	if err != nil {
		return o, fmt.Errorf("--metrics-options: %w", err)
	}
	return o, nil
}

// Open implements sink.Plugin: it checks the options.
func (fl *Flags) Open(context.Context, sink.Env) (*sink.Part, error) {
	_, err := fl.Options()
	return nil, err
}
