package prom

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

func TestThePluginServesTheProcessMetricsItNames(t *testing.T) {
	p := NewPlugin(metrics.NewFlags())
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	p.AddFlags(fs, sink.AllFlags)
	if err := fs.Parse([]string{"--metrics"}); err != nil {
		t.Fatal(err)
	}
	part, err := p.Open(context.Background(), sink.Env{Logger: quietLogger()})
	if err != nil || part == nil {
		t.Fatalf("Open: %v, %v", part, err)
	}
	srv := httptest.NewServer(part.Handlers[Pattern])
	t.Cleanup(srv.Close)
	body := scrape(t, srv.URL)
	for _, name := range []string{ProcessCPUSecondsTotal, ProcessResidentMemoryBytes} {
		if !bytes.Contains(body, []byte("\n"+name+" ")) {
			t.Errorf("the scrape has no %s", name)
		}
	}
}
