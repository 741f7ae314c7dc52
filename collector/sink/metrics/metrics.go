package metrics

import (
	"fmt"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts flows into Prometheus metrics registered on the registry
// given to New. Its methods are safe for concurrent use.
type Metrics struct {
	flows   *family[flowKey, prometheus.Counter]
	drops   *family[dropKey, prometheus.Counter]
	policy  *family[policyKey, prometheus.Counter]
	traffic *traffic
	http    *httpMetrics
	lost    *lostCollector
	queues  *queueCollector
	srcCtx  []Context
	dstCtx  []Context
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	flows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "periscope_flows_total",
		Help: "Connections seen: flow records of kind start (one per connection and interface it was observed on), by verdict, traffic direction, IP protocol and flow type.",
	}, []string{"verdict", "direction", "protocol", "type"})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "periscope_drops_total",
		Help: "Dropped connections: flow records of kind start with verdict DROPPED, by drop reason and traffic direction.",
	}, []string{"reason", "direction"})
	policy := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "periscope_policy_verdicts_total",
		Help: "Policy decisions on connections (flow records of kind start), by verdict, the direction of the deciding policy, and match: allow (an allow rule), deny (a deny rule) or default (no rule allowed it).",
	}, []string{"action", "direction", "match"})
	m := &Metrics{
		flows: newFamily(vec[prometheus.Counter](flows), o.MaxSeries, 4, func(k flowKey) []string {
			return []string{k.verdict.String(), k.direction.String(), api.ProtocolName(k.protocol), k.typ.String()}
		}),
		drops: newFamily(vec[prometheus.Counter](drops), o.MaxSeries, 2, func(k dropKey) []string {
			return []string{k.reason.String(), k.direction.String()}
		}),
		policy: newFamily(vec[prometheus.Counter](policy), o.MaxSeries, 3, func(k policyKey) []string {
			return []string{k.action.String(), k.direction.String(), k.match}
		}),
		traffic: newTraffic(o),
		http:    newHTTPMetrics(o),
		lost:    newLostCollector(),
		queues:  newQueueCollector(),
		srcCtx:  o.SourceContext,
		dstCtx:  o.DestinationContext,
	}
	for _, c := range []prometheus.Collector{flows, drops, policy, m.traffic, m.http, m.lost, m.queues} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register flow metrics: %w", err)
		}
	}
	return m, nil
}

type flowKey struct {
	verdict   api.Verdict
	direction api.TrafficDirection
	protocol  uint8
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
// sink.Observer (and a collector.Sink), to be called on the pipeline
// goroutine.
func (m *Metrics) Consume(f *api.Flow) {
	if f.Event == api.EventStart {
		m.flows.get(flowKey{f.Verdict, f.TrafficDirection, f.L4.Protocol, f.Type}).Inc()
		if f.Verdict == api.VerdictDropped {
			m.drops.get(dropKey{f.DropReason, f.TrafficDirection}).Inc()
		}
		m.observePolicy(f)
	}
	m.traffic.observe(f, m.srcCtx, m.dstCtx)
}

// observePolicy counts the policy decisions on a new connection (see
// sink.PolicyDecisions).
func (m *Metrics) observePolicy(f *api.Flow) {
	sink.PolicyDecisions(f, func(dir api.TrafficDirection, match string) {
		m.policy.get(policyKey{f.Verdict, dir, match}).Inc()
	})
}
