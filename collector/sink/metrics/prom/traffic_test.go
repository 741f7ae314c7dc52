package prom

import (
	"maps"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

func TestBytesAndPacketsAreExactDeltas(t *testing.T) {
	tests := []struct {
		name        string
		opts        metrics.Options
		flows       []*api.Flow
		wantBytes   map[string]float64 // by "destination,source" (label names sorted)
		wantPackets map[string]float64
		wantEvicted float64
		wantTracked float64
	}{
		{
			name: "cumulative records of one connection add up to its last counters",
			flows: []*api.Flow{
				conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)),
				conn(1000, 1, api.EventState, cnt(1, 60, 1, 60)),
				conn(1000, 1, api.EventPeriodic, cnt(10, 1000, 9, 900)),
				conn(1000, 1, api.EventPeriodic, cnt(10, 1000, 9, 900)), // nothing new
				conn(1000, 1, api.EventEnd, cnt(12, 1200, 11, 1100)),
			},
			wantBytes:   map[string]float64{"b,a": 1200, "a,b": 1100},
			wantPackets: map[string]float64{"b,a": 12, "a,b": 11},
		},
		{
			name: "a connection seen on two interfaces counts on each",
			flows: []*api.Flow{
				conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)),
				conn(1000, 2, api.EventStart, cnt(1, 60, 0, 0)),
				conn(1000, 1, api.EventPeriodic, cnt(3, 180, 0, 0)),
				conn(1000, 2, api.EventPeriodic, cnt(3, 180, 0, 0)),
			},
			wantBytes:   map[string]float64{"b,a": 360},
			wantPackets: map[string]float64{"b,a": 6},
			wantTracked: 2,
		},
		{
			name: "a connection reusing an ended one's 5-tuple counts from zero",
			flows: []*api.Flow{
				conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)),
				conn(1000, 1, api.EventEnd, cnt(5, 500, 0, 0)),
				conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)),
				conn(1000, 1, api.EventEnd, cnt(2, 100, 0, 0)),
			},
			wantBytes:   map[string]float64{"b,a": 600},
			wantPackets: map[string]float64{"b,a": 7},
		},
		{
			name: "counters that go back count from zero",
			flows: []*api.Flow{
				conn(1000, 1, api.EventPeriodic, cnt(5, 500, 0, 0)),
				conn(1000, 1, api.EventPeriodic, cnt(2, 100, 0, 0)),
			},
			wantBytes:   map[string]float64{"b,a": 600},
			wantPackets: map[string]float64{"b,a": 7},
			wantTracked: 1,
		},
		{
			name: "a full table evicts a connection and counts it",
			opts: metrics.Options{MaxConnections: 1},
			flows: []*api.Flow{
				conn(1000, 1, api.EventStart, cnt(1, 60, 0, 0)),
				conn(2000, 1, api.EventStart, cnt(1, 60, 0, 0)), // evicts 1000
				conn(2000, 1, api.EventEnd, cnt(2, 120, 0, 0)),
			},
			wantBytes:   map[string]float64{"b,a": 180},
			wantPackets: map[string]float64{"b,a": 3},
			wantEvicted: 1,
		},
		{
			name: "contexts choose the labels, falling back to the next one",
			opts: metrics.Options{SourceContext: []metrics.Context{metrics.ContextWorkload}, DestinationContext: []metrics.Context{metrics.ContextPodName, metrics.ContextIdentity}},
			flows: []*api.Flow{
				conn(1000, 1, api.EventStart, cnt(1, 60, 1, 40)),
				func() *api.Flow {
					f := conn(2000, 1, api.EventStart, cnt(1, 10, 0, 0))
					f.Destination.PodName = "" // outside the cluster: identity only
					f.Destination.Labels = []string{"k8s:app=server", "k8s:io.kubernetes.pod.namespace=b"}
					return f
				}(),
			},
			// Reply traffic is sent by the destination: its source label is the
			// destination endpoint under the source context.
			// The identity context is Hubble's: the identity's labels joined by ",".
			wantBytes:   map[string]float64{"server-1,a/client": 60, "client-1,b/server": 40, "k8s:app=server,k8s:io.kubernetes.pod.namespace=b,a/client": 10},
			wantPackets: map[string]float64{"server-1,a/client": 1, "client-1,b/server": 1, "k8s:app=server,k8s:io.kubernetes.pod.namespace=b,a/client": 1},
			wantTracked: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, tt.opts)
			for _, f := range tt.flows {
				m.Consume(f)
			}
			if got := series(t, reg, "periscope_bytes_total"); !maps.Equal(got, tt.wantBytes) {
				t.Errorf("bytes = %v, want %v", got, tt.wantBytes)
			}
			if got := series(t, reg, "periscope_packets_total"); !maps.Equal(got, tt.wantPackets) {
				t.Errorf("packets = %v, want %v", got, tt.wantPackets)
			}
			if got := series(t, reg, "periscope_traffic_evicted_connections_total")[""]; got != tt.wantEvicted {
				t.Errorf("evicted = %v, want %v", got, tt.wantEvicted)
			}
			if got := series(t, reg, "periscope_traffic_tracked_connections")[""]; got != tt.wantTracked {
				t.Errorf("tracked = %v, want %v", got, tt.wantTracked)
			}
		})
	}
}
