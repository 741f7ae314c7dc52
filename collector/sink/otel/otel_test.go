package otel

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/collector/sink/otel/oteltest"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clearOTLPEnv keeps the developer's OTEL_* variables out of a test.
func clearOTLPEnv(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

// synthetic is a set of generated flow records and what they should count.
type synthetic struct {
	flows            []api.Flow
	starts, drops    int64
	bytes, packets   int64
	dropped          map[[16]byte]bool // flows by UUID whose verdict is DROPPED
	byUUID           map[[16]byte]*api.Flow
	bytesAB, bytesBA int64 // bytes from namespace a to b, and b to a
}

// genFlows returns conns connections of four records each (start, state,
// periodic, end) with growing cumulative counters; every fifth connection is
// dropped by policy (start and end only, forward packets only).
func genFlows(conns int) *synthetic {
	s := &synthetic{dropped: map[[16]byte]bool{}, byUUID: map[[16]byte]*api.Flow{}}
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	id := 0
	for c := range conns {
		dropped := c%5 == 0
		events := []api.EventKind{api.EventStart, api.EventState, api.EventPeriodic, api.EventEnd}
		if dropped {
			events = []api.EventKind{api.EventStart, api.EventEnd}
		}
		var cnt api.Counters
		for i, ev := range events {
			id++
			cnt.PacketsForward += uint64(1 + i)
			cnt.BytesForward += uint64(60 * (1 + i + c))
			if !dropped {
				cnt.PacketsReply += uint64(i)
				cnt.BytesReply += uint64(100 * i)
			}
			f := api.Flow{
				Time:             base.Add(time.Duration(id) * time.Millisecond),
				UUID:             [16]byte{0: byte(id >> 8), 1: byte(id), 15: 1},
				Verdict:          api.VerdictForwarded,
				Type:             api.FlowTypeL3L4,
				TrafficDirection: api.TrafficDirectionEgress,
				NodeName:         "node-1",
				IP: api.IP{
					Source:      netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + c%50)}),
					Destination: netip.MustParseAddr("10.0.1.2"),
					Version:     api.IPv4,
				},
				L4:          api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(40000 + c), DestinationPort: 80, TCPFlags: api.TCPFlagSYN},
				Source:      api.Endpoint{ID: 7, Namespace: "a", Workload: "client", PodName: "client-" + strconv.Itoa(c%3), Identity: 100, Labels: []string{"k8s:app=client"}},
				Destination: api.Endpoint{Namespace: "b", Workload: "server", PodName: "server-0", Identity: 200},
				Interface:   api.Interface{Index: 3, Name: "eth0"},
				Event:       ev,
				StartTime:   base,
				Counters:    cnt,
			}
			if dropped {
				f.Verdict, f.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
				s.dropped[f.UUID] = true
				if ev == api.EventStart {
					s.drops++
				}
			}
			if ev == api.EventStart {
				s.starts++
			}
			s.flows = append(s.flows, f)
		}
		s.bytes += int64(cnt.BytesForward + cnt.BytesReply)
		s.packets += int64(cnt.PacketsForward + cnt.PacketsReply)
		s.bytesAB += int64(cnt.BytesForward)
		s.bytesBA += int64(cnt.BytesReply)
	}
	for i := range s.flows {
		s.byUUID[s.flows[i].UUID] = &s.flows[i]
	}
	return s
}

// runPipeline puts the flows through a sink assembly whose one sink is the
// exporter (Exporter.Part: metrics observe, logs behind a queue), and stops
// it: the queue drains, then the exporter shuts down, exporting the
// metrics' last values.
func runPipeline(t *testing.T, e *Exporter, flows []api.Flow) *sink.Queue {
	t.Helper()
	env := sink.Env{Logger: quietLogger(), Sources: []sink.SourceCounters{{Name: "datapath", Read: func() sink.SourceStats { return sink.SourceStats{EventsLost: 3} }}}}
	part, err := e.Part(env, sink.QueueOptions{BatchSize: 32, FlushInterval: 10 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Part: %v", err)
	}
	a, err := sink.Open(context.Background(), env, sink.Opened("otel", part))
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	stop := a.Start(context.Background())
	for i := range flows {
		a.Consume(&flows[i])
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	return a.Queues()[0]
}

func newTestExporter(t *testing.T, o Options) *Exporter {
	t.Helper()
	o.Logger = quietLogger()
	o.ExportInterval = time.Hour // only ForceFlush and Shutdown export
	e, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Shutdown(ctx) //nolint:errcheck // the receiver may be gone
	})
	return e
}

// checkExport checks what the receiver got for the synthetic flows.
func checkExport(t *testing.T, r *oteltest.Receiver, s *synthetic, q *sink.Queue) {
	t.Helper()
	recs, ress := r.LogRecords()
	if len(recs) != len(s.flows) {
		t.Fatalf("got %d log records, want one per flow: %d", len(recs), len(s.flows))
	}
	for _, res := range ress {
		a := oteltest.Attrs(res.GetAttributes())
		if a["service.name"] != "periscope-test" || a["host.name"] != "node-1" || a["service.version"] == "" {
			t.Fatalf("log resource attributes = %v, want service.name, host.name and service.version", a)
		}
	}
	seen := map[[16]byte]bool{}
	for _, rec := range recs {
		var got api.Flow
		if err := api.ParseJSON([]byte(rec.GetBody().GetStringValue()), &got); err != nil {
			t.Fatalf("body is not a flow's JSON: %v\n%s", err, rec.GetBody())
		}
		want, ok := s.byUUID[got.UUID]
		if !ok || seen[got.UUID] {
			t.Fatalf("log record of unknown or repeated flow %x", got.UUID)
		}
		seen[got.UUID] = true
		if ts := time.Unix(0, int64(rec.GetTimeUnixNano())); !ts.Equal(want.Time) {
			t.Errorf("flow %x: timestamp %v, want the flow's time %v", got.UUID, ts, want.Time)
		}
		if got.Counters != want.Counters || got.Event != want.Event {
			t.Errorf("flow %x: body has %+v %v, want %+v %v", got.UUID, got.Counters, got.Event, want.Counters, want.Event)
		}
		wantSev := logspb.SeverityNumber_SEVERITY_NUMBER_INFO
		if s.dropped[got.UUID] {
			wantSev = logspb.SeverityNumber_SEVERITY_NUMBER_WARN
		}
		if rec.GetSeverityNumber() != wantSev {
			t.Errorf("flow %x: severity %v, want %v", got.UUID, rec.GetSeverityNumber(), wantSev)
		}
		a := oteltest.Attrs(rec.GetAttributes())
		for k, v := range map[string]string{
			"periscope.event":           want.Event.String(),
			"periscope.verdict":         want.Verdict.String(),
			"network.transport":         "tcp",
			"network.type":              "ipv4",
			"source.address":            want.IP.Source.String(),
			"source.port":               strconv.Itoa(int(want.L4.SourcePort)),
			"destination.address":       "10.0.1.2",
			"destination.port":          "80",
			"k8s.namespace.name":        "a", // EGRESS: the source is the observed endpoint
			"k8s.pod.name":              want.Source.PodName,
			"periscope.packets.forward": strconv.FormatUint(want.Counters.PacketsForward, 10),
			"periscope.bytes.forward":   strconv.FormatUint(want.Counters.BytesForward, 10),
			"periscope.bytes.reply":     strconv.FormatUint(want.Counters.BytesReply, 10),
		} {
			if a[k] != v {
				t.Errorf("flow %x: attribute %s = %q, want %q", got.UUID, k, a[k], v)
				break
			}
		}
		if rec.GetEventName() != EventName {
			t.Errorf("event name %q, want %q", rec.GetEventName(), EventName)
		}
	}

	ms, res := r.LastMetrics(t)
	if a := oteltest.Attrs(res.GetAttributes()); a["service.name"] != "periscope-test" || a["host.name"] != "node-1" {
		t.Errorf("metric resource attributes = %v", a)
	}
	for _, c := range []struct {
		name string
		want int64
	}{
		{"periscope.flows", s.starts},
		{"periscope.drops", s.drops},
		{"periscope.policy.verdicts", s.drops}, // only the policy drops decide
		{"periscope.bytes", s.bytes},
		{"periscope.packets", s.packets},
		{"periscope.sink.written", int64(len(s.flows))},
		{"periscope.sink.dropped", 0},
		{"periscope.sink.queue_length", 0},
		{"periscope.traffic.tracked_connections", 0}, // every connection ended
		{"periscope.lost_events", 3},
	} {
		m, ok := ms[c.name]
		if !ok {
			t.Errorf("metric %s not exported", c.name)
			continue
		}
		if got := oteltest.Total(m); got != c.want {
			t.Errorf("%s sums to %d, want %d (points %v)", c.name, got, c.want, oteltest.Points(m))
		}
	}
	if got := oteltest.Points(ms["periscope.bytes"]); got["periscope.destination=b,periscope.source=a"] != s.bytesAB ||
		got["periscope.destination=a,periscope.source=b"] != s.bytesBA {
		t.Errorf("periscope.bytes points = %v, want a→b %d and b→a %d", got, s.bytesAB, s.bytesBA)
	}
	flows := oteltest.Points(ms["periscope.flows"])
	fwd := "network.transport=tcp,network.type=ipv4,periscope.flow_type=L3_L4,periscope.traffic_direction=EGRESS,periscope.verdict=FORWARDED"
	if flows[fwd] != s.starts-s.drops {
		t.Errorf("periscope.flows points = %v, want %d at %s", flows, s.starts-s.drops, fwd)
	}
	if got := oteltest.Points(ms["periscope.drops"])["periscope.drop_reason=POLICY_DENIED,periscope.traffic_direction=EGRESS"]; got != s.drops {
		t.Errorf("periscope.drops POLICY_DENIED/EGRESS = %d, want %d", got, s.drops)
	}
	if st := q.Stats(); st.Written != uint64(len(s.flows)) {
		t.Errorf("queue stats %+v, want every flow written", st)
	}
}

func TestExportOverGRPCSendsTheFlowsMetricsAndOneLogRecordPerFlow(t *testing.T) {
	clearOTLPEnv(t)
	r, addr := oteltest.StartGRPC(t)
	e := newTestExporter(t, Options{Endpoint: addr, Protocol: ProtocolGRPC, Insecure: true, ServiceName: "periscope-test", NodeName: "node-1"})
	s := genFlows(30) // 6 dropped connections of 2 records, 24 of 4: 108 records
	q := runPipeline(t, e, s.flows)
	checkExport(t, r, s, q)
}

func TestExportOverHTTPSendsTheSameAsOverGRPC(t *testing.T) {
	clearOTLPEnv(t)
	r, base := oteltest.StartHTTP(t)
	// The protocol comes from the environment; the endpoint's http scheme
	// means no TLS.
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", ProtocolHTTPProtobuf)
	e := newTestExporter(t, Options{Endpoint: base, ServiceName: "periscope-test", NodeName: "node-1"})
	s := genFlows(28) // 6 dropped connections of 2 records, 22 of 4: 100 records
	q := runPipeline(t, e, s.flows)
	checkExport(t, r, s, q)
}

func TestEnvironmentChoosesTheEndpointWhenNoneIsGiven(t *testing.T) {
	clearOTLPEnv(t)
	r, addr := oteltest.StartGRPC(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	e := newTestExporter(t, Options{NodeName: "node-1"})
	f := genFlows(1).flows[0]
	if err := e.Write(context.Background(), []api.Flow{f}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	recs, ress := r.LogRecords()
	if len(recs) != 1 {
		t.Fatalf("got %d log records, want 1", len(recs))
	}
	if a := oteltest.Attrs(ress[0].GetAttributes()); a["service.name"] != "from-env" {
		t.Errorf("service.name = %q, want OTEL_SERVICE_NAME's from-env", a["service.name"])
	}
}

func TestWriteFailsWhenTheExportFails(t *testing.T) {
	clearOTLPEnv(t)
	// Nothing listens there; the short context bounds the exporter's retries.
	lis := oteltest.ClosedPort(t)
	e := newTestExporter(t, Options{Endpoint: lis, Insecure: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.Write(ctx, genFlows(1).flows); err == nil {
		t.Fatal("Write to an unreachable endpoint returned nil")
	}
	// Shut down now, briefly: the final metric export would retry for long.
	sctx, scancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer scancel()
	e.Shutdown(sctx) //nolint:errcheck // it fails: nothing listens
}

func TestExportCarriesHTTPGoldenSignalsFromL7Records(t *testing.T) {
	clearOTLPEnv(t)
	r, addr := oteltest.StartGRPC(t)
	e := newTestExporter(t, Options{Endpoint: addr, Protocol: ProtocolGRPC, Insecure: true, NodeName: "node-1"})
	flows := []api.Flow{
		*httpResponse("GET", 200, 5*time.Millisecond, api.TrafficDirectionIngress),
		*httpResponse("GET", 503, 7*time.Millisecond, api.TrafficDirectionIngress),
		*httpResponse("POST", 201, time.Millisecond, api.TrafficDirectionEgress),
	}
	runPipeline(t, e, flows)
	ms, _ := r.LastMetrics(t)
	reqs, ok := ms[metrics.OTelHTTPRequests]
	if !ok {
		t.Fatalf("%s not exported; got %v", metrics.OTelHTTPRequests, slices.Sorted(maps.Keys(ms)))
	}
	if got := oteltest.Total(reqs); got != 3 {
		t.Errorf("%s sums to %d, want 3 (points %v)", metrics.OTelHTTPRequests, got, oteltest.Points(reqs))
	}
	for name, want := range map[string]uint64{
		metrics.OTelHTTPServerRequestDuration: 2,
		metrics.OTelHTTPClientRequestDuration: 1,
	} {
		m, ok := ms[name]
		if !ok {
			t.Errorf("%s not exported", name)
			continue
		}
		var n uint64
		for _, dp := range m.GetHistogram().GetDataPoints() {
			n += dp.GetCount()
		}
		if n != want || m.GetUnit() != "s" {
			t.Errorf("%s: %d requests in unit %q, want %d in s", name, n, m.GetUnit(), want)
		}
	}
}

// A flow log record of an L7 record with a trace carries its trace ID, so
// a trace back end links the two; the others carry none.
func TestFlowLogRecordsCarryTheirTraceID(t *testing.T) {
	clearOTLPEnv(t)
	r, addr := oteltest.StartGRPC(t)
	e := newTestExporter(t, Options{Endpoint: addr, Protocol: ProtocolGRPC, Insecure: true, NodeName: "node-1"})
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	traced := httpResponse("GET", 200, time.Millisecond, api.TrafficDirectionIngress)
	traced.L7.TraceID = id
	runPipeline(t, e, []api.Flow{*traced, *httpResponse("GET", 200, time.Millisecond, api.TrafficDirectionIngress)})
	recs, _ := r.LogRecords()
	if len(recs) != 2 {
		t.Fatalf("%d log records, want 2", len(recs))
	}
	var got []string
	for _, rec := range recs {
		got = append(got, hex.EncodeToString(rec.GetTraceId()))
	}
	slices.Sort(got)
	if want := []string{"", id}; !slices.Equal(got, want) {
		t.Errorf("log records' trace IDs %q, want %q", got, want)
	}
}
