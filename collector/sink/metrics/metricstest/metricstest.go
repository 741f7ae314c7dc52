// Package metricstest helps the metric model's exporters test that they
// export every metric of the model: Populate gives each a series.
//
// The package must not be imported outside tests.
package metricstest

import (
	"context"
	"net/netip"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// Populate feeds m flow records, a lost-events source, a flow source's
// counters with kernel maps, queues and a stage's account such that every
// metric of metrics.Defs has at least one series, in every instrument (HTTP
// responses reported by the client, the server and neither).
func Populate(m *metrics.Metrics) {
	start := api.Flow{
		Event: api.EventStart, Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDenied,
		Type: api.FlowTypeL3L4, TrafficDirection: api.TrafficDirectionEgress,
		IP:             api.IP{Source: netip.MustParseAddr("198.18.0.1"), Destination: netip.MustParseAddr("198.18.0.2"), Version: api.IPv4},
		L4:             api.L4{Protocol: api.ProtoTCP, SourcePort: 40000, DestinationPort: 80},
		Source:         api.Endpoint{Namespace: "a", Workload: "client", PodName: "client-1", Identity: 100},
		Destination:    api.Endpoint{Namespace: "b", Workload: "server", PodName: "server-1", Identity: 200},
		Counters:       api.Counters{PacketsForward: 1, BytesForward: 60, PacketsReply: 1, BytesReply: 60},
		EgressDeniedBy: []api.PolicyRef{{Namespace: "a", Name: "deny-all", Kind: "CiliumNetworkPolicy"}},
	}
	m.Consume(&start)
	for _, dir := range []api.TrafficDirection{api.TrafficDirectionEgress, api.TrafficDirectionIngress, api.TrafficDirectionUnknown} {
		resp := start
		resp.Event, resp.Verdict, resp.DropReason, resp.Counters = api.EventUnknown, api.VerdictForwarded, api.DropReasonUnknown, api.Counters{}
		resp.Type, resp.TrafficDirection, resp.IsReply = api.FlowTypeL7, dir, true
		resp.Source, resp.Destination = start.Destination, start.Source
		resp.L7 = &api.L7{Type: api.L7TypeResponse, LatencyNs: uint64(3 * time.Millisecond),
			HTTP: &api.HTTP{Code: 200, Method: "GET", URL: "http://server/", Protocol: "HTTP/1.1"}}
		m.Consume(&resp)
	}
	// A DNS query the proxy forwarded, one it refused, and an answer.
	for _, v := range []api.Verdict{api.VerdictForwarded, api.VerdictDropped} {
		q := start
		q.Event, q.Verdict, q.DropReason, q.Counters, q.Type = api.EventUnknown, v, api.DropReasonUnknown, api.Counters{}, api.FlowTypeL7
		q.L7 = &api.L7{Type: api.L7TypeRequest, DNS: &api.DNS{Query: "example.com.", Qtypes: []string{"A"}, ObservationSource: "proxy"}}
		m.Consume(&q)
	}
	answer := start
	answer.Event, answer.Verdict, answer.DropReason, answer.Counters = api.EventUnknown, api.VerdictForwarded, api.DropReasonUnknown, api.Counters{}
	answer.Type, answer.IsReply, answer.Source, answer.Destination = api.FlowTypeL7, true, start.Destination, start.Source
	answer.L7 = &api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{Query: "example.com.", Qtypes: []string{"A"},
		IPs: []string{"198.18.0.9"}, TTL: 60, RRtypes: []string{"A"}, ObservationSource: "proxy"}}
	m.Consume(&answer)
	m.AddLostEventsSource("ringbuf", func() uint64 { return 2 })
	m.AddSources(sink.SourceCounters{Name: "datapath", Read: func() sink.SourceStats {
		return sink.SourceStats{EventsRead: 5, EventsLost: 1, FlowTableEntries: 3, FlowTableCapacity: 64, PolicyRevision: 2}
	}, Maps: func() []sink.KernelMap {
		return []sink.KernelMap{{Name: "flows", MaxEntries: 32768, Bytes: 6 << 20}}
	}})
	m.AddQueues(queue{})
	m.AddStages(func() []account.Stage {
		return []account.Stage{{Name: account.StageRingBuffer, In: 3, Out: 1, Queued: 1,
			Dropped: map[string]uint64{account.ReasonRingFull: 1}}}
	})
	// A sink write, as a queue the metrics watch reports it.
	q, err := sink.NewQueue(okSink{}, sink.QueueOptions{})
	if err != nil {
		panic("metricstest: " + err.Error())
	}
	m.WatchQueues([]*sink.Queue{q})
	ctx, cancel := context.WithCancel(context.Background())
	q.Offer(&start)
	cancel()
	q.Run(ctx) // ends at once, writing what it holds
}

// okSink takes every batch.
type okSink struct{}

func (okSink) Name() string                            { return "written" }
func (okSink) Write(context.Context, []api.Flow) error { return nil }

// queue is a sink queue with a flow of each count.
type queue struct{}

func (queue) Name() string { return "test" }

func (queue) Stats() sink.Stats {
	return sink.Stats{Offered: 4, Recovered: 3, Queued: 1, Spooled: 1, Dropped: 1, Written: 1, Failed: 1, Corrupt: 1,
		Unrecovered: 1, Deduplicated: 1}
}

func (queue) IOStats() sink.IOStats { return sink.IOStats{SpoolBytes: 1, WriteErrors: 1} }
