package prom

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func newTestMetrics(t testing.TB, o metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, o)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
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

// httpResponse is an L7 record of the response to a method request from
// (ns "a") to (ns "b"), reported by the client's side (EGRESS) or the
// server's (INGRESS): it goes from b to a.
func httpResponse(method string, code uint32, latency time.Duration, dir api.TrafficDirection) *api.Flow {
	f := conn(80, 1, api.EventUnknown, api.Counters{})
	f.Type, f.TrafficDirection, f.IsReply = api.FlowTypeL7, dir, true
	f.Source, f.Destination = f.Destination, f.Source
	f.L7 = &api.L7{Type: api.L7TypeResponse, LatencyNs: uint64(latency),
		HTTP: &api.HTTP{Code: code, Method: method, URL: "http://server/", Protocol: "HTTP/1.1"}}
	return f
}

// httpRequest is the L7 record of a request from (ns "a") to (ns "b").
func httpRequest(method string, dir api.TrafficDirection) *api.Flow {
	f := conn(1000, 1, api.EventUnknown, api.Counters{})
	f.Type, f.TrafficDirection = api.FlowTypeL7, dir
	f.L7 = &api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: method, URL: "http://server/", Protocol: "HTTP/1.1"}}
	return f
}

// histogramSum is the sum of a histogram's series, by label values as
// series keys them; -1 when there is no such series.
func histogramSum(t testing.TB, reg *prometheus.Registry, name, key string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var lvs []string
			for _, lp := range m.GetLabel() {
				lvs = append(lvs, lp.GetValue())
			}
			if strings.Join(lvs, ",") == key {
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	return -1
}

// cnt is shorthand for cumulative counters.
func cnt(pf, bf, pr, br uint64) api.Counters {
	return api.Counters{PacketsForward: pf, BytesForward: bf, PacketsReply: pr, BytesReply: br}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
