package collector_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
)

// countedSource emits n copies of a flow (each its own UUID and port) as
// fast as the pipeline takes them, then waits for the end.
type countedSource struct {
	n    int
	done chan time.Duration
}

func (s *countedSource) Name() string { return "counted" }

func (s *countedSource) Run(ctx context.Context, emit func(*api.Flow)) error {
	f := api.Flow{Type: api.FlowTypeL3L4, Event: api.EventStart, Verdict: api.VerdictForwarded, NodeName: "node1",
		IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
		L4: api.L4{Protocol: api.ProtoTCP, DestinationPort: 8080}, Interface: api.Interface{Index: 10, Name: "veth-fe-h"}}
	start := time.Now()
	for i := range s.n {
		f.Time = start.Add(time.Duration(i))
		f.UUID[0], f.UUID[1], f.UUID[2] = byte(i), byte(i>>8), byte(i>>16)
		f.L4.SourcePort = uint16(i)
		emit(&f)
	}
	s.done <- time.Since(start)
	<-ctx.Done()
	return nil
}

// discard takes every batch.
type discard struct{}

func (discard) Name() string                            { return "discard" }
func (discard) Write(context.Context, []api.Flow) error { return nil }

// BenchmarkPipelineSpool is the collector's pipeline (enrich, ring, a sink
// queue with ClickHouse's batching in front of a sink that takes
// everything) per flow, with the queue in memory only and with a spool,
// whose journal every accepted flow is written ahead to.
//
//	go test ./collector/ -run '^$' -bench PipelineSpool -count 5
func BenchmarkPipelineSpool(b *testing.B) {
	for _, tc := range []struct {
		name  string
		spool bool
	}{{"memory", false}, {"journal", true}} {
		b.Run(tc.name, func(b *testing.B) {
			o := sink.QueueOptions{Capacity: 1 << 18, BatchSize: 1 << 17}
			if tc.spool {
				o.SpoolDir = b.TempDir()
			}
			a, err := sink.Open(context.Background(), sink.Env{Logger: slog.New(slog.DiscardHandler)}, sink.Queued(discard{}, o))
			if err != nil {
				b.Fatal(err)
			}
			stop := a.Start(context.Background())
			defer stop()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			src := &countedSource{n: b.N, done: make(chan time.Duration, 1)}
			c, err := collector.New(collector.Options{Topology: benchTopology(), Sources: []collector.Source{src}, Listener: ln,
				RingSize: 1 << 16, Sinks: []collector.Sink{a}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			runDone := make(chan error, 1)
			go func() { runDone <- c.Run(ctx) }()
			d := <-src.done
			cancel()
			if err := <-runDone; err != nil {
				b.Fatal(err)
			}
			st := a.Queues()[0].Stats()
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/flow")
			b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/flow")
		})
	}
}

func benchTopology() *collector.Topology {
	return &collector.Topology{NodeName: "node1", Endpoints: []collector.ResolvedEndpoint{{
		Config:      collector.EndpointConfig{Name: "frontend", Labels: map[string]string{"app": "frontend"}},
		HostIfIndex: 10, HostIfName: "veth-fe-h", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.2")},
	}}}
}
