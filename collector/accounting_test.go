package collector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/metrics/prom"
)

// gatedSink takes batches while open, and counts them.
type gatedSink struct {
	open    atomic.Bool
	written atomic.Uint64
}

func (s *gatedSink) Name() string { return "gated" }

func (s *gatedSink) Write(_ context.Context, batch []api.Flow) error {
	if !s.open.Load() {
		return errors.New("gated sink closed")
	}
	s.written.Add(uint64(len(batch)))
	return nil
}

// accountingNode is a collector whose flows go to a spooled queue in front
// of a gatedSink, with Prometheus metrics; its datapath is a fixed account.
type accountingNode struct {
	base string
	stop func()
}

func startAccountingNode(t *testing.T, s *gatedSink, spool string, flows []api.Flow) *accountingNode {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	metricsPlugin := prom.NewPlugin(metrics.NewFlags())
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	metricsPlugin.AddFlags(f, sink.AllFlags)
	if err := f.Parse([]string{"--metrics"}); err != nil {
		t.Fatal(err)
	}
	datapathStages := func() []account.Stage {
		return []account.Stage{{Name: account.StageRingBuffer, In: 10, Out: 7, Queued: 1,
			Dropped: map[string]uint64{account.ReasonRingFull: 2}}}
	}
	a, err := sink.Open(context.Background(), sink.Env{Logger: quiet, Stages: datapathStages},
		metricsPlugin,
		sink.Queued(s, sink.QueueOptions{Capacity: 200, BatchSize: 20, FlushInterval: 5 * time.Millisecond,
			RetryBackoff: 5 * time.Millisecond, DrainTimeout: 50 * time.Millisecond,
			SpoolDir: spool, SpoolMaxBytes: 64 << 10}))
	if err != nil {
		t.Fatal(err)
	}
	stopSinks := a.Start(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{
		Topology: &collector.Topology{NodeName: "node1"},
		Sources:  []collector.Source{apitest.NewSource(flows, 0)},
		Listener: ln,
		Sinks:    []collector.Sink{a},
		Handlers: a.Handlers(),
		Stages:   func() []account.Stage { return append(datapathStages(), a.Stages()...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	stopCollector := apitest.Start(t, "collector", c)
	for c.Store().Seen() < uint64(len(flows)) {
		time.Sleep(time.Millisecond)
	}
	n := &accountingNode{base: "http://" + c.Addr().String()}
	n.stop = func() {
		stopCollector()
		if err := stopSinks(); err != nil {
			t.Errorf("stop the sinks: %v", err)
		}
	}
	return n
}

// settledStatus returns the status once ready says it has come where the
// test expects and two reads in a row agree.
func (n *accountingNode) settledStatus(t *testing.T, ready func(sink account.Stage) bool) collector.Status {
	t.Helper()
	var last collector.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st collector.Status
		getJSON(t, n.base+"/api/v1/status", &st)
		st.UptimeSeconds = 0
		if len(st.Stages) == 2 && ready(st.Stages[1]) && fmt.Sprint(st) == fmt.Sprint(last) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status still moving after 10s: %+v", st)
		}
		last = st
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape returns /metrics' samples by name and labels, as text:
// `periscope_stage_in_total{stage="ringbuf"}` → 10.
func (n *accountingNode) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(n.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// checkAccounts checks that every stage of the status balances and that
// the metrics say the same.
func checkAccounts(t *testing.T, when string, st collector.Status, samples map[string]float64) {
	t.Helper()
	if len(st.Stages) != 2 {
		t.Fatalf("%s: stages %+v, want the ring buffer's and the sink's", when, st.Stages)
	}
	for _, stage := range st.Stages {
		if err := stage.Check(); err != nil {
			t.Errorf("%s: status: %v", when, err)
		}
		for name, want := range map[string]uint64{
			metrics.StageInTotal: stage.In, metrics.StageOutTotal: stage.Out, metrics.StageQueued: stage.Queued,
		} {
			key := fmt.Sprintf("%s{stage=%q}", name, stage.Name)
			if got := samples[key]; got != float64(want) {
				t.Errorf("%s: %s = %v, the status says %d", when, key, got, want)
			}
		}
		for reason, want := range stage.Dropped {
			key := fmt.Sprintf("%s{reason=%q,stage=%q}", metrics.StageDroppedTotal, reason, stage.Name)
			if got := samples[key]; got != float64(want) {
				t.Errorf("%s: %s = %v, the status says %d", when, key, got, want)
			}
		}
	}
}

// TestStatusAndMetricsAccountForEveryFlowAcrossARestart: a collector whose
// sink is down drops flows (its queue and spool fill up) and keeps the rest
// in its spool and journal; the next run writes them. In both runs every
// stage of /api/v1/status balances (in = out + dropped + queued) and
// /metrics reports the same accounts, the sink's spooled, corrupt and
// deduplicated counts included.
func TestStatusAndMetricsAccountForEveryFlowAcrossARestart(t *testing.T) {
	spool := t.TempDir()
	flows := make([]api.Flow, 3000)
	for i := range flows {
		flows[i] = api.Flow{Time: time.Unix(1_800_000_000, int64(i)), Type: api.FlowTypeL3L4, Event: api.EventStart,
			IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
			L4: api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(i), DestinationPort: 80}}
	}
	s := &gatedSink{}
	n1 := startAccountingNode(t, s, spool, flows)
	// The queue's ring (200) and spool (64 KiB) full, the rest dropped.
	st := n1.settledStatus(t, func(s account.Stage) bool {
		return s.Detail["spooled"] > 0 && s.Detail["in_memory"] <= 100 && s.Dropped[account.ReasonQueueFull] > 0
	})
	checkAccounts(t, "the sink down", st, n1.scrape(t))
	sinkStage := st.Stages[1]
	if sinkStage.Name != account.SinkStage("gated") || sinkStage.In != 3000 || sinkStage.Dropped[account.ReasonQueueFull] == 0 ||
		sinkStage.Detail["spooled"] == 0 || sinkStage.Out != 0 {
		t.Fatalf("sink stage %+v: want drops and a spool", sinkStage)
	}
	t.Logf("the sink down: %+v", sinkStage)
	samples := n1.scrape(t)
	for _, name := range []string{metrics.SinkSpooledFlows, metrics.SinkCorruptTotal, metrics.SinkDeduplicatedTotal} {
		if _, ok := samples[name+`{sink="gated"}`]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if got := samples[metrics.SinkSpooledFlows+`{sink="gated"}`]; got != float64(sinkStage.Detail["spooled"]) {
		t.Errorf("spooled %v in /metrics, %d in the status", got, sinkStage.Detail["spooled"])
	}
	n1.stop()
	kept := sinkStage.Queued

	s.open.Store(true)
	n2 := startAccountingNode(t, s, spool, nil)
	deadline := time.Now().Add(10 * time.Second)
	for s.written.Load() < kept && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st = n2.settledStatus(t, func(s account.Stage) bool { return s.Queued == 0 })
	checkAccounts(t, "the next run", st, n2.scrape(t))
	sinkStage = st.Stages[1]
	t.Logf("the next run: %+v", sinkStage)
	if sinkStage.Detail["recovered"] != kept || sinkStage.Out != kept || sinkStage.Queued != 0 {
		t.Errorf("the next run's sink stage %+v: want the %d flows the first kept recovered and written", sinkStage, kept)
	}
	n2.stop()
}
