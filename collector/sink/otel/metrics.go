package otel

import (
	"context"
	"fmt"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// scopeName is the instrumentation scope of Periscope's meters and loggers.
const scopeName = "github.com/periscope-dev/periscope/collector/sink/otel"

// Metrics counts flows into OTel instruments: the metrics of the Prometheus
// package, named the OTel way (periscope.flows for periscope_flows_total,
// ...), with semantic-convention attribute names. Its methods are safe for
// concurrent use.
type Metrics struct {
	flows, drops, policy metric.Int64Counter
	flowSeries           *series[flowKey]
	dropSeries           *series[dropKey]
	policySeries         *series[policyKey]
	traffic              *traffic
	http                 *httpMetrics
	sources              *sources
	srcCtx, dstCtx       []metrics.Context
}

// NewMetrics creates the instruments on a meter of mp. opts are the
// Prometheus package's options, so one --metrics-options string configures
// both exports alike.
func NewMetrics(mp metric.MeterProvider, opts metrics.Options) (*Metrics, error) {
	o, err := metricsDefaults(opts)
	if err != nil {
		return nil, err
	}
	meter := mp.Meter(scopeName, metric.WithInstrumentationVersion(version()))
	m := &Metrics{srcCtx: o.SourceContext, dstCtx: o.DestinationContext}
	if m.flows, err = meter.Int64Counter("periscope.flows", metric.WithUnit("{flow}"),
		metric.WithDescription("Connections seen: flow records of kind start (one per connection and interface it was observed on), by verdict, traffic direction, transport, network type and flow type.")); err != nil {
		return nil, fmt.Errorf("create periscope.flows: %w", err)
	}
	if m.drops, err = meter.Int64Counter("periscope.drops", metric.WithUnit("{flow}"),
		metric.WithDescription("Dropped connections: flow records of kind start with verdict DROPPED, by drop reason and traffic direction.")); err != nil {
		return nil, fmt.Errorf("create periscope.drops: %w", err)
	}
	if m.policy, err = meter.Int64Counter("periscope.policy.verdicts", metric.WithUnit("{verdict}"),
		metric.WithDescription("Policy decisions on connections (flow records of kind start), by verdict, the direction of the deciding policy, and match: allow (an allow rule), deny (a deny rule) or default (no rule allowed it).")); err != nil {
		return nil, fmt.Errorf("create periscope.policy.verdicts: %w", err)
	}
	m.flowSeries = newSeries(o.MaxSeries, func(k flowKey) attribute.Set {
		return attribute.NewSet(
			KeyVerdict.String(k.verdict.String()),
			KeyTrafficDirection.String(k.direction.String()),
			transport(k.protocol),
			networkType(k.ipVersion),
			KeyFlowType.String(k.typ.String()),
		)
	})
	m.dropSeries = newSeries(o.MaxSeries, func(k dropKey) attribute.Set {
		return attribute.NewSet(KeyDropReason.String(k.reason.String()), KeyTrafficDirection.String(k.direction.String()))
	})
	m.policySeries = newSeries(o.MaxSeries, func(k policyKey) attribute.Set {
		return attribute.NewSet(KeyVerdict.String(k.action.String()), KeyTrafficDirection.String(k.direction.String()), KeyPolicyMatch.String(k.match))
	})
	if m.traffic, err = newTraffic(meter, o); err != nil {
		return nil, err
	}
	if m.http, err = newHTTPMetrics(meter, o); err != nil {
		return nil, err
	}
	if m.sources, err = newSources(meter, m.traffic); err != nil {
		return nil, err
	}
	return m, nil
}

// metricsDefaults fills the zero fields of o as the Prometheus package does.
func metricsDefaults(o metrics.Options) (metrics.Options, error) {
	if o.MaxSeries < 0 || o.MaxConnections < 0 {
		return o, fmt.Errorf("metrics options: negative cap in %+v", o)
	}
	if len(o.SourceContext) == 0 {
		o.SourceContext = []metrics.Context{metrics.ContextNamespace}
	}
	if len(o.DestinationContext) == 0 {
		o.DestinationContext = []metrics.Context{metrics.ContextNamespace}
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = metrics.DefaultMaxSeries
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = metrics.DefaultMaxConnections
	}
	if len(o.HTTPBuckets) == 0 {
		o.HTTPBuckets = prometheus.DefBuckets
	}
	return o, nil
}

type flowKey struct {
	verdict   api.Verdict
	direction api.TrafficDirection
	protocol  uint8
	ipVersion api.IPVersion
	typ       api.FlowType
}

type dropKey struct {
	reason    api.DropReason
	direction api.TrafficDirection
}

type policyKey struct {
	action    api.Verdict
	direction api.TrafficDirection
	match     string // one of sink.Match*
}

// Consume counts one flow record; it does not keep f. It makes *Metrics a
// sink.Observer, to be called on the pipeline goroutine.
func (m *Metrics) Consume(f *api.Flow) {
	ctx := context.Background()
	if f.Event == api.EventStart {
		m.flows.Add(ctx, 1, m.flowSeries.get(flowKey{f.Verdict, f.TrafficDirection, f.L4.Protocol, f.IP.Version, f.Type}))
		if f.Verdict == api.VerdictDropped {
			m.drops.Add(ctx, 1, m.dropSeries.get(dropKey{f.DropReason, f.TrafficDirection}))
		}
		m.observePolicy(ctx, f)
	}
	m.traffic.observe(ctx, f, m.srcCtx, m.dstCtx)
}

// observePolicy counts the policy decisions on a new connection (see
// sink.PolicyDecisions).
func (m *Metrics) observePolicy(ctx context.Context, f *api.Flow) {
	sink.PolicyDecisions(f, func(dir api.TrafficDirection, match string) {
		m.policy.Add(ctx, 1, m.policySeries.get(policyKey{f.Verdict, dir, match}))
	})
}
