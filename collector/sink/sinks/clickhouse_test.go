package sinks

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
)

func TestClickHouseStoresEveryFlowOfACleanStopAndExposesItsStore(t *testing.T) {
	srv := chtest.Start(t)
	const n = 300
	set, _ := parse(t, sink.AllFlags, "--clickhouse="+srv.DSN("periscope"), "--clickhouse-spool-dir="+t.TempDir())
	ctx := context.Background()
	a, err := set.Open(ctx, sink.Env{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if set.ClickHouse() == nil {
		t.Fatal("no store for the history reader")
	}
	err = a.RunWith(ctx, func(context.Context) error {
		for i := range n {
			f := httpResponse()
			f.UUID[0], f.UUID[1] = byte(i>>8), byte(i)
			f.Event, f.L7, f.Type = api.EventStart, nil, api.FlowTypeL3L4
			a.Consume(f)
		}
		return nil // the pipeline ends at once: the queue writes at the stop
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Query("SELECT count() FROM periscope.flows"); strings.TrimSpace(got) != strconv.Itoa(n) {
		t.Errorf("ClickHouse holds %s flows, want %d", got, n)
	}
}

func TestASpoolDirectoryInUseFailsOpenAndClosesTheStore(t *testing.T) {
	srv := chtest.Start(t)
	dir := t.TempDir()
	first, _ := parse(t, sink.AllFlags, "--clickhouse="+srv.DSN("periscope"), "--clickhouse-spool-dir="+dir)
	a, err := first.Open(context.Background(), sink.Env{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	second, _ := parse(t, sink.AllFlags, "--clickhouse="+srv.DSN("periscope"), "--clickhouse-spool-dir="+dir)
	if _, err := second.Open(context.Background(), sink.Env{Logger: quietLogger()}); err == nil ||
		!strings.HasPrefix(err.Error(), "--clickhouse-spool-dir: ") {
		t.Errorf("a second Open on the same spool directory returned %v", err)
	}
	if second.ClickHouse() != nil {
		t.Error("the failed Open left its store for the history reader")
	}
}
