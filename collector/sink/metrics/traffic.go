package metrics

import (
	"strconv"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/prometheus/client_golang/prometheus"
)

// traffic owns periscope_bytes_total and periscope_packets_total. Flow
// records carry cumulative counters per connection and interface, so it
// keeps each connection's last counters and adds only the difference.
type traffic struct {
	bytes, packets *prometheus.CounterVec
	tracked        *prometheus.Desc
	evicted        *prometheus.Desc
	series         *family[trafficKey, counterPair]
	deltas         *sink.Deltas
}

// counterPair is the bytes and packets counter of one label set.
type counterPair struct{ bytes, packets prometheus.Counter }

// pairVec looks up both vectors at once, so that one cache serves both.
type pairVec struct{ bytes, packets *prometheus.CounterVec }

func (v pairVec) GetMetricWithLabelValues(lvs ...string) (counterPair, error) {
	b, err := v.bytes.GetMetricWithLabelValues(lvs...)
	if err != nil {
		return counterPair{}, err
	}
	p, err := v.packets.GetMetricWithLabelValues(lvs...)
	if err != nil {
		return counterPair{}, err
	}
	return counterPair{b, p}, nil
}

// endpointKey is an endpoint's label under a context, kept in parts so that
// building the key allocates nothing; label() joins them once per series.
type endpointKey struct {
	ctx  Context
	a, b string
	id   uint32
}

type trafficKey struct{ src, dst endpointKey }

func newTraffic(o Options) *traffic {
	t := &traffic{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "periscope_bytes_total",
			Help: "Bytes sent from source to destination (L2 frame length as seen at TC), exact from per-connection counters; a connection seen on two interfaces of the node counts on both.",
		}, []string{"source", "destination"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "periscope_packets_total",
			Help: "Packets sent from source to destination, exact from per-connection counters; a connection seen on two interfaces of the node counts on both.",
		}, []string{"source", "destination"}),
		tracked: prometheus.NewDesc("periscope_traffic_tracked_connections",
			"Connections whose last counters are kept to count bytes and packets exactly.", nil, nil),
		evicted: prometheus.NewDesc("periscope_traffic_evicted_connections_total",
			"Tracked connections forgotten because the table was full; their next record may be counted twice.", nil, nil),
		deltas: sink.NewDeltas(o.MaxConnections),
	}
	t.series = newFamily(vec[counterPair](pairVec{t.bytes, t.packets}), o.MaxSeries, 2, func(k trafficKey) []string {
		return []string{k.src.label(), k.dst.label()}
	})
	return t
}

// observe adds the flow's counters since the connection's previous record.
func (t *traffic) observe(f *api.Flow, srcCtx, dstCtx []Context) {
	switch f.Event {
	case api.EventStart, api.EventState, api.EventPeriodic, api.EventEnd:
	default:
		return // socket events carry no traffic counters
	}
	d := t.deltas.Delta(f)
	if d.PacketsForward|d.BytesForward != 0 {
		p := t.series.get(trafficKey{endpointOf(&f.Source, srcCtx), endpointOf(&f.Destination, dstCtx)})
		p.bytes.Add(float64(d.BytesForward))
		p.packets.Add(float64(d.PacketsForward))
	}
	if d.PacketsReply|d.BytesReply != 0 {
		// Replies are sent by the destination to the source.
		p := t.series.get(trafficKey{endpointOf(&f.Destination, srcCtx), endpointOf(&f.Source, dstCtx)})
		p.bytes.Add(float64(d.BytesReply))
		p.packets.Add(float64(d.PacketsReply))
	}
}

// endpointOf returns e's label key under the first context with a value.
func endpointOf(e *api.Endpoint, ctxs []Context) endpointKey {
	for _, c := range ctxs {
		switch c {
		case ContextNamespace:
			if e.Namespace != "" {
				return endpointKey{ctx: c, a: e.Namespace}
			}
		case ContextWorkload, ContextWorkloadName:
			if e.Workload != "" {
				return endpointKey{ctx: c, a: e.Namespace, b: e.Workload}
			}
		case ContextPod, ContextPodName:
			if e.PodName != "" {
				return endpointKey{ctx: c, a: e.Namespace, b: e.PodName}
			}
		case ContextIdentity:
			if e.Identity != 0 {
				return endpointKey{ctx: c, id: e.Identity}
			}
		}
	}
	return endpointKey{}
}

func (k endpointKey) label() string {
	switch k.ctx {
	case ContextNamespace:
		return k.a
	case ContextWorkload, ContextPod:
		if k.a == "" {
			return k.b
		}
		return k.a + "/" + k.b
	case ContextWorkloadName, ContextPodName:
		return k.b
	case ContextIdentity:
		return strconv.FormatUint(uint64(k.id), 10)
	}
	return ""
}

// Describe implements prometheus.Collector.
func (t *traffic) Describe(ch chan<- *prometheus.Desc) {
	t.bytes.Describe(ch)
	t.packets.Describe(ch)
	ch <- t.tracked
	ch <- t.evicted
}

// Collect implements prometheus.Collector.
func (t *traffic) Collect(ch chan<- prometheus.Metric) {
	t.bytes.Collect(ch)
	t.packets.Collect(ch)
	n, ev := t.deltas.Stats()
	ch <- prometheus.MustNewConstMetric(t.tracked, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(t.evicted, prometheus.CounterValue, float64(ev))
}
