package clickhouse

import (
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
)

// The history reads' bounds are the plugin's flags, and reach the store.
func TestThePluginsFlagsBoundHistoryReads(t *testing.T) {
	tests := []struct {
		name                 string
		args                 []string
		wantQueries          int
		wantTimeout, wantRet time.Duration
	}{
		{"defaults", []string{"--clickhouse=tcp://127.0.0.1:9000"}, DefaultMaxQueries, DefaultQueryTimeout, DefaultRetention},
		{"set", []string{"--clickhouse=tcp://127.0.0.1:9000", "--clickhouse-max-queries=7", "--clickhouse-query-timeout=15s",
			"--clickhouse-retention=48h"}, 7, 15 * time.Second, 48 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlugin()
			f := pflag.NewFlagSet("collector", pflag.ContinueOnError)
			p.AddFlags(f, sink.AllFlags)
			if err := f.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			o := p.options(sink.Env{})
			if o.MaxQueries != tt.wantQueries || o.QueryTimeout != tt.wantTimeout || o.Retention != tt.wantRet {
				t.Errorf("options: max queries %d, query timeout %s, retention %s; want %d, %s, %s",
					o.MaxQueries, o.QueryTimeout, o.Retention, tt.wantQueries, tt.wantTimeout, tt.wantRet)
			}
		})
	}
}
