package otel

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// traffic owns periscope.bytes and periscope.packets. Flow records carry
// cumulative counters per connection and interface, so it keeps each
// connection's last counters and adds only the difference, exactly as the
// Prometheus package does.
type traffic struct {
	bytes, packets metric.Int64Counter
	series         *series[trafficKey]
	deltas         *sink.Deltas
}

// endpointKey is an endpoint's attribute value under a context, kept in parts
// so that building the key allocates nothing; value() joins them once per
// series.
type endpointKey struct {
	ctx  metrics.Context
	a, b string
	id   uint32
}

type trafficKey struct{ src, dst endpointKey }

func newTraffic(meter metric.Meter, o metrics.Options) (*traffic, error) {
	t := &traffic{deltas: sink.NewDeltas(o.MaxConnections)}
	var err error
	if t.bytes, err = meter.Int64Counter("periscope.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes sent from source to destination (L2 frame length as seen at TC), exact from per-connection counters; a connection seen on two interfaces of the node counts on both.")); err != nil {
		return nil, fmt.Errorf("create periscope.bytes: %w", err)
	}
	if t.packets, err = meter.Int64Counter("periscope.packets", metric.WithUnit("{packet}"),
		metric.WithDescription("Packets sent from source to destination, exact from per-connection counters; a connection seen on two interfaces of the node counts on both.")); err != nil {
		return nil, fmt.Errorf("create periscope.packets: %w", err)
	}
	t.series = newSeries(o.MaxSeries, func(k trafficKey) attribute.Set {
		return attribute.NewSet(KeySource.String(k.src.value()), KeyDestination.String(k.dst.value()))
	})
	return t, nil
}

// observe adds the flow's counters since the connection's previous record.
func (t *traffic) observe(ctx context.Context, f *api.Flow, srcCtx, dstCtx []metrics.Context) {
	switch f.Event {
	case api.EventStart, api.EventState, api.EventPeriodic, api.EventEnd:
	default:
		return // socket events carry no traffic counters
	}
	d := t.deltas.Delta(f)
	if d.PacketsForward|d.BytesForward != 0 {
		o := t.series.get(trafficKey{endpointOf(&f.Source, srcCtx), endpointOf(&f.Destination, dstCtx)})
		t.bytes.Add(ctx, toInt64(d.BytesForward), o)
		t.packets.Add(ctx, toInt64(d.PacketsForward), o)
	}
	if d.PacketsReply|d.BytesReply != 0 {
		// Replies are sent by the destination to the source.
		o := t.series.get(trafficKey{endpointOf(&f.Destination, srcCtx), endpointOf(&f.Source, dstCtx)})
		t.bytes.Add(ctx, toInt64(d.BytesReply), o)
		t.packets.Add(ctx, toInt64(d.PacketsReply), o)
	}
}

// stats returns the tracked connections and the evictions so far.
func (t *traffic) stats() (tracked int, evicted uint64) {
	return t.deltas.Stats()
}

// toInt64 converts a count for an Int64 instrument, saturating.
func toInt64(v uint64) int64 {
	return int64(min(v, math.MaxInt64))
}

// endpointOf returns e's key under the first context with a value.
func endpointOf(e *api.Endpoint, ctxs []metrics.Context) endpointKey {
	for _, c := range ctxs {
		switch c {
		case metrics.ContextNamespace:
			if e.Namespace != "" {
				return endpointKey{ctx: c, a: e.Namespace}
			}
		case metrics.ContextWorkload, metrics.ContextWorkloadName:
			if e.Workload != "" {
				return endpointKey{ctx: c, a: e.Namespace, b: e.Workload}
			}
		case metrics.ContextPod, metrics.ContextPodName:
			if e.PodName != "" {
				return endpointKey{ctx: c, a: e.Namespace, b: e.PodName}
			}
		case metrics.ContextIdentity:
			if e.Identity != 0 {
				return endpointKey{ctx: c, id: e.Identity}
			}
		}
	}
	return endpointKey{}
}

// value is the attribute value, the same as the Prometheus label's.
func (k endpointKey) value() string {
	switch k.ctx {
	case metrics.ContextNamespace:
		return k.a
	case metrics.ContextWorkload, metrics.ContextPod:
		if k.a == "" {
			return k.b
		}
		return k.a + "/" + k.b
	case metrics.ContextWorkloadName, metrics.ContextPodName:
		return k.b
	case metrics.ContextIdentity:
		return strconv.FormatUint(uint64(k.id), 10)
	}
	return ""
}
