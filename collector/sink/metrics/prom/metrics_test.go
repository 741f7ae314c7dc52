package prom

import (
	"context"
	"errors"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestFlowsDropsAndPolicyVerdicts(t *testing.T) {
	type want struct{ family, labels string }
	dropped := func(reason api.DropReason, mod func(*api.Flow)) *api.Flow {
		f := conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0))
		f.Verdict, f.DropReason = api.VerdictDropped, reason
		if mod != nil {
			mod(f)
		}
		return f
	}
	tests := []struct {
		name  string
		flows []*api.Flow
		want  map[want]float64 // every series of the three families
	}{
		{
			name: "a connection is counted once, by its start record",
			flows: []*api.Flow{
				conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)),
				conn(1000, 1, api.EventState, cnt(1, 60, 1, 60)),
				conn(1000, 1, api.EventPeriodic, cnt(5, 300, 5, 300)),
				conn(1000, 1, api.EventEnd, cnt(6, 360, 6, 360)),
			},
			want: map[want]float64{{"periscope_flows_total", "EGRESS,IPv4,TCP,L3_L4,FORWARDED"}: 1},
		},
		{
			name: "socket events are not connections",
			flows: []*api.Flow{
				{Event: api.EventSock, Type: api.FlowTypeSock, L4: api.L4{Protocol: api.ProtoTCP}},
			},
			want: map[want]float64{},
		},
		{
			name:  "a default-deny policy drop counts a drop and a default verdict",
			flows: []*api.Flow{dropped(api.DropReasonPolicyDenied, nil)},
			want: map[want]float64{
				{"periscope_flows_total", "EGRESS,IPv4,TCP,L3_L4,DROPPED"}:    1,
				{"periscope_drops_total", "EGRESS,POLICY_DENIED"}:             1,
				{"periscope_policy_verdicts_total", "DROPPED,EGRESS,default"}: 1,
			},
		},
		{
			name: "a deny rule counts as a deny match in its direction",
			flows: []*api.Flow{dropped(api.DropReasonPolicyDeny, func(f *api.Flow) {
				f.IngressDeniedBy = []api.PolicyRef{{Name: "deny-b"}}
				f.EgressAllowedBy = []api.PolicyRef{{Name: "allow-a"}}
			})},
			want: map[want]float64{
				{"periscope_flows_total", "EGRESS,IPv4,TCP,L3_L4,DROPPED"}:  1,
				{"periscope_drops_total", "EGRESS,POLICY_DENY"}:             1,
				{"periscope_policy_verdicts_total", "DROPPED,INGRESS,deny"}: 1,
				{"periscope_policy_verdicts_total", "DROPPED,EGRESS,allow"}: 1,
			},
		},
		{
			name: "an allowed connection counts an allow match",
			flows: []*api.Flow{func() *api.Flow {
				f := conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0))
				f.IngressAllowedBy = []api.PolicyRef{{Name: "allow-b"}}
				return f
			}()},
			want: map[want]float64{
				{"periscope_flows_total", "EGRESS,IPv4,TCP,L3_L4,FORWARDED"}:   1,
				{"periscope_policy_verdicts_total", "FORWARDED,INGRESS,allow"}: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, metrics.Options{})
			for _, f := range tt.flows {
				m.Consume(f)
			}
			got := map[want]float64{}
			for _, fam := range []string{"periscope_flows_total", "periscope_drops_total", "periscope_policy_verdicts_total"} {
				for labels, v := range series(t, reg, fam) {
					got[want{fam, labels}] = v
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("series = %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestCardinalityIsCappedWithExactTotals(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{MaxSeries: 3})
	for i := range 10 {
		f := conn(uint16(1000+i), 1, api.EventStart, cnt(1, 100, 0, 0))
		f.Source.Namespace = string(rune('a' + i)) // 10 source namespaces
		f.L4.Protocol = uint8(200 + i)             // 10 protocols
		m.Consume(f)
	}
	for _, fam := range []string{"periscope_flows_total", "periscope_bytes_total", "periscope_packets_total"} {
		got := series(t, reg, fam)
		if len(got) != 4 {
			t.Errorf("%s has %d series, want 3 plus overflow: %v", fam, len(got), got)
		}
		if _, ok := got["overflow,overflow"]; fam != "periscope_flows_total" && !ok {
			t.Errorf("%s has no overflow series: %v", fam, got)
		}
		if _, ok := got["overflow,overflow,overflow,overflow,overflow"]; fam == "periscope_flows_total" && !ok {
			t.Errorf("%s has no overflow series: %v", fam, got)
		}
	}
	if s := sum(series(t, reg, "periscope_flows_total")); s != 10 {
		t.Errorf("sum of periscope_flows_total = %v, want 10", s)
	}
	if s := sum(series(t, reg, "periscope_bytes_total")); s != 1000 {
		t.Errorf("sum of periscope_bytes_total = %v, want 1000", s)
	}
}

func TestHTTPGoldenSignalsFromL7Responses(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{})
	egress, ingress := api.TrafficDirectionEgress, api.TrafficDirectionIngress
	for _, f := range []*api.Flow{
		httpResponse("GET", 200, 10*time.Millisecond, egress),
		httpResponse("GET", 200, 20*time.Millisecond, egress),
		httpResponse("POST", 503, time.Second, egress),
		httpResponse("POST", 201, time.Millisecond, ingress),
		httpResponse("BREW", 999, time.Millisecond, egress), // RFC 2324: no series of its own
		httpRequest("GET", egress),                          // counted on its response
		func() *api.Flow { // not HTTP
			f := httpResponse("GET", 200, time.Millisecond, egress)
			f.L7 = &api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{Query: "example.com."}}
			return f
		}(),
	} {
		m.Consume(f)
	}
	// By destination, method, protocol, reporter, source, status: the
	// source is the requester (the response's destination).
	want := map[string]float64{
		"b,GET,HTTP/1.1,client,a,200":  2,
		"b,POST,HTTP/1.1,client,a,503": 1,
		"b,POST,HTTP/1.1,server,a,201": 1,
		"b,other,HTTP/1.1,client,a,0":  1,
	}
	if got := series(t, reg, metrics.HTTPRequestsTotal); !maps.Equal(got, want) {
		t.Errorf("requests = %v, want %v", got, want)
	}
	// Sample counts by destination, method, reporter, source.
	wantDur := map[string]float64{"b,GET,client,a": 2, "b,POST,client,a": 1, "b,POST,server,a": 1, "b,other,client,a": 1}
	if got := series(t, reg, metrics.HTTPRequestDurationSeconds); !maps.Equal(got, wantDur) {
		t.Errorf("duration sample counts = %v, want %v", got, wantDur)
	}
	if got := histogramSum(t, reg, metrics.HTTPRequestDurationSeconds, "b,GET,client,a"); math.Abs(got-0.03) > 1e-9 {
		t.Errorf("GET duration sum = %vs, want the latencies' 0.03s", got)
	}
}

type fakeQueue struct {
	name string
	st   sink.Stats
}

func (q fakeQueue) Name() string      { return q.name }
func (q fakeQueue) Stats() sink.Stats { return q.st }

func (fakeQueue) IOStats() sink.IOStats { return sink.IOStats{} }

func TestScrapeTimeSources(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{})
	var lost uint64 = 7
	m.AddLostEventsSource("ringbuf", func() uint64 { return lost })
	m.AddQueues(fakeQueue{"clickhouse", sink.Stats{Offered: 30, Recovered: 10, Queued: 3, Spooled: 7, Dropped: 4, Written: 5,
		Failed: 6, Corrupt: 8, Unrecovered: 7, Deduplicated: 2}})
	m.AddStages(func() []account.Stage {
		return []account.Stage{{Name: account.StageRingBuffer, In: 100, Out: 90, Queued: 3,
			Dropped: map[string]uint64{account.ReasonRingFull: 7}}}
	})
	lost = 9
	tests := []struct {
		family string
		want   map[string]float64
	}{
		{"periscope_lost_events_total", map[string]float64{"ringbuf": 9}},
		{"periscope_sink_queue_length", map[string]float64{"clickhouse": 3}},
		{"periscope_sink_dropped_total", map[string]float64{"clickhouse": 4}},
		{"periscope_sink_written_total", map[string]float64{"clickhouse": 5}},
		{"periscope_sink_failed_total", map[string]float64{"clickhouse": 6}},
		{"periscope_sink_spooled_flows", map[string]float64{"clickhouse": 7}},
		{"periscope_sink_corrupt_total", map[string]float64{"clickhouse": 8}},
		{"periscope_sink_deduplicated_total", map[string]float64{"clickhouse": 2}},
		{"periscope_sink_recovered_total", map[string]float64{"clickhouse": 10}},
		{"periscope_sink_unrecovered_total", map[string]float64{"clickhouse": 7}},
		// Every stage: in = out + dropped + queued.
		{"periscope_stage_in_total", map[string]float64{"ringbuf": 100, "sink/clickhouse": 40}},
		{"periscope_stage_out_total", map[string]float64{"ringbuf": 90, "sink/clickhouse": 5}},
		{"periscope_stage_queued", map[string]float64{"ringbuf": 3, "sink/clickhouse": 10}},
		{"periscope_stage_dropped_total", map[string]float64{"ring_full,ringbuf": 7,
			"queue_full,sink/clickhouse": 4, "failed,sink/clickhouse": 6, "corrupt,sink/clickhouse": 8, "unrecovered,sink/clickhouse": 7}},
	}
	for _, tt := range tests {
		if got := series(t, reg, tt.family); !maps.Equal(got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.family, got, tt.want)
		}
	}
}

func TestConsumeDoesNotAllocate(t *testing.T) {
	for _, opts := range []metrics.Options{
		{SourceContext: []metrics.Context{metrics.ContextWorkload}, DestinationContext: []metrics.Context{metrics.ContextPod}},
		{SourceContext: []metrics.Context{metrics.ContextIdentity}, DestinationContext: []metrics.Context{metrics.ContextIdentity}},
	} {
		checkConsumeDoesNotAllocate(t, opts)
	}
}

func checkConsumeDoesNotAllocate(t *testing.T, opts metrics.Options) {
	m, _ := newTestMetrics(t, opts)
	f := conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0))
	f.Source.Labels, f.Destination.Labels = []string{"k8s:app=client"}, []string{"k8s:app=server"}
	m.Consume(f) // first of its label sets: allowed to allocate
	f.Event = api.EventPeriodic
	f.Counters = cnt(1, 60, 1, 60)
	m.Consume(f)
	resp := httpResponse("GET", 200, time.Millisecond, api.TrafficDirectionIngress)
	resp.Source.Labels, resp.Destination.Labels = []string{"k8s:app=server"}, []string{"k8s:app=client"}
	m.Consume(resp)
	var n uint64 = 1
	allocs := testing.AllocsPerRun(1000, func() {
		n++
		f.Event = api.EventStart
		m.Consume(f)
		f.Event = api.EventPeriodic
		f.Counters = cnt(n, 60*n, n, 60*n)
		m.Consume(f)
		resp.L7.LatencyNs = n
		m.Consume(resp)
	})
	if allocs != 0 {
		t.Errorf("Consume allocates %v times per flow on known label sets (contexts %v, %v), want 0", allocs, opts.SourceContext, opts.DestinationContext)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{})
	_ = m
	if _, err := NewMetrics(reg, metrics.Options{}); err == nil {
		t.Error("NewMetrics registered the same families twice on one registry")
	}
	if _, err := NewMetrics(prometheus.NewRegistry(), metrics.Options{MaxSeries: -1}); err == nil {
		t.Error("NewMetrics accepted a negative MaxSeries")
	}
}

func BenchmarkConsume(b *testing.B) {
	m, _ := newTestMetrics(b, metrics.Options{SourceContext: []metrics.Context{metrics.ContextWorkload}, DestinationContext: []metrics.Context{metrics.ContextWorkload}})
	f := conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0))
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		f.Counters = cnt(n, 60*n, n, 60*n)
		m.Consume(f)
	}
}

// Metrics is called synchronously by the pipeline, as a sink.Observer.
var _ sink.Observer = (*metrics.Metrics)(nil)

func TestFlowSourcesAndSinkIO(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{})
	m.AddSources(sink.SourceCounters{Name: "ringbuf", Read: func() sink.SourceStats {
		return sink.SourceStats{EventsRead: 10, EventsLost: 2, FlowTableEntries: 3, FlowTableCapacity: 64, PolicyRevision: 4}
	}})
	m.AddSources(sink.SourceCounters{Name: "envoy", Read: func() sink.SourceStats { return sink.SourceStats{EventsRead: 1} }})
	failing := &flakySink{fail: 1}
	q, err := sink.NewQueue(failing, sink.QueueOptions{RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.WatchQueues([]*sink.Queue{q})
	ctx, cancel := context.WithCancel(context.Background())
	q.Offer(conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)))
	cancel()
	q.Run(ctx) // fails once, then writes the flow while draining
	tests := []struct {
		family string
		want   map[string]float64
	}{
		{"periscope_events_read_total", map[string]float64{"ringbuf": 10, "envoy": 1}},
		{"periscope_lost_events_total", map[string]float64{"ringbuf": 2, "envoy": 0}},
		{"periscope_flow_table_entries", map[string]float64{"ringbuf": 3}}, // envoy keeps no table
		{"periscope_flow_table_capacity", map[string]float64{"ringbuf": 64}},
		{"periscope_policy_revision", map[string]float64{"ringbuf": 4, "envoy": 0}},
		{"periscope_sink_write_errors_total", map[string]float64{"flaky": 1}},
		{"periscope_sink_write_duration_seconds", map[string]float64{"flaky": 2}}, // the failed write and the good one
		{"periscope_sink_spool_bytes", map[string]float64{"flaky": 0}},
		{"periscope_sink_written_total", map[string]float64{"flaky": 1}},
	}
	for _, tt := range tests {
		if got := series(t, reg, tt.family); !maps.Equal(got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.family, got, tt.want)
		}
	}
}

// flakySink fails its first fail writes.
type flakySink struct{ fail int }

func (*flakySink) Name() string { return "flaky" }

func (s *flakySink) Write(context.Context, []api.Flow) error {
	if s.fail > 0 {
		s.fail--
		return errors.New("flaky")
	}
	return nil
}

func TestPolicyMatchesCountEachDecidingPolicyPerEndpoint(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{
		SourceContext: []metrics.Context{metrics.ContextWorkload}, DestinationContext: []metrics.Context{metrics.ContextWorkload}})
	allowed := conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0))
	allowed.IngressAllowedBy = []api.PolicyRef{{Namespace: "b", Name: "web"}, {Namespace: "b", Name: "also-web"}}
	allowed.EgressAllowedBy = []api.PolicyRef{{Namespace: "a", Name: "out"}}
	m.Consume(allowed)
	m.Consume(conn(1000, 1, api.EventEnd, cnt(2, 60, 0, 0))) // not a new connection
	denied := conn(2000, 1, api.EventStart, cnt(1, 60, 0, 0))
	denied.Verdict, denied.DropReason = api.VerdictDropped, api.DropReasonPolicyDeny
	denied.IngressDeniedBy, denied.IngressAllowedBy = []api.PolicyRef{{Namespace: "b", Name: "deny"}}, []api.PolicyRef{{Namespace: "b", Name: "web"}}
	m.Consume(denied)
	defaulted := conn(3000, 1, api.EventStart, cnt(1, 60, 0, 0))
	defaulted.Verdict, defaulted.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
	m.Consume(defaulted)
	audited := conn(4000, 1, api.EventStart, cnt(1, 60, 0, 0))
	audited.Verdict, audited.IngressDeniedBy = api.VerdictAudit, []api.PolicyRef{{Namespace: "b", Name: "deny"}}
	m.Consume(audited)
	auditedByDefault := conn(5000, 1, api.EventStart, cnt(1, 60, 0, 0))
	auditedByDefault.Verdict, auditedByDefault.DropReason = api.VerdictAudit, api.DropReasonPolicyDenied
	m.Consume(auditedByDefault)
	// By action, direction, endpoint, match, policy (label names sorted).
	want := map[string]float64{
		"FORWARDED,INGRESS,b/server,allow,b/web":      1,
		"FORWARDED,INGRESS,b/server,allow,b/also-web": 1,
		"FORWARDED,EGRESS,a/client,allow,a/out":       1,
		"DROPPED,INGRESS,b/server,deny,b/deny":        1,
		"DROPPED,EGRESS,a/client,default,":            1,
		"AUDIT,INGRESS,b/server,deny,b/deny":          1,
		"AUDIT,EGRESS,a/client,default,":              1,
	}
	if got := series(t, reg, "periscope_policy_matches_total"); !maps.Equal(got, want) {
		t.Errorf("periscope_policy_matches_total = %v, want %v", got, want)
	}
}
