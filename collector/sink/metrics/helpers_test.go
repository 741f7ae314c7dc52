package metrics

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func newTestMetrics(t testing.TB, o Options) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

// series returns the value of every series of family name, keyed by its
// label values joined with ",", in label-name order.
func series(t testing.TB, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for i, lp := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += lp.GetValue()
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func sum(vals map[string]float64) float64 {
	s := 0.0
	for _, v := range vals {
		s += v
	}
	return s
}

// conn builds a TCP flow record of a connection from (ns "a", pod p) port
// sport to (ns "b") port 80, seen on interface ifindex.
func conn(sport uint16, ifindex uint32, ev api.EventKind, c api.Counters) *api.Flow {
	return &api.Flow{
		Event:            ev,
		Verdict:          api.VerdictForwarded,
		Type:             api.FlowTypeL3L4,
		TrafficDirection: api.TrafficDirectionEgress,
		IP: api.IP{
			Source:      netip.MustParseAddr("10.0.0.1"),
			Destination: netip.MustParseAddr("10.0.0.2"),
			Version:     api.IPv4,
		},
		L4:          api.L4{Protocol: api.ProtoTCP, SourcePort: sport, DestinationPort: 80},
		Source:      api.Endpoint{Namespace: "a", Workload: "client", PodName: "client-1", Identity: 100},
		Destination: api.Endpoint{Namespace: "b", Workload: "server", PodName: "server-1", Identity: 200},
		Interface:   api.Interface{Index: ifindex},
		Counters:    c,
	}
}

// cnt is shorthand for cumulative counters.
func cnt(pf, bf, pr, br uint64) api.Counters {
	return api.Counters{PacketsForward: pf, BytesForward: bf, PacketsReply: pr, BytesReply: br}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
