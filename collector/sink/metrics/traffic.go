package metrics

import (
	"github.com/periscope-dev/periscope/api"
)

// The traffic metrics: exact bytes and packets between endpoints.

// endpointLabels are the source and destination labels, whose values are
// the endpoints under Options.SourceContext and DestinationContext.
func endpointLabels() []Label {
	return []Label{
		{Name: LabelSource, Key: KeySource},
		{Name: LabelDestination, Key: KeyDestination},
	}
}

func bytesDef() Def {
	return Def{
		Name: BytesTotal, OTelName: OTelBytes, Unit: "By", Kind: KindCounter, Capped: true,
		Help:   "Bytes sent from source to destination (L2 frame length as seen at TC), exact from per-connection counters; a connection seen at two interfaces of the node counts once, where its initiator's packets enter the node.",
		Labels: endpointLabels(),
	}
}

func packetsDef() Def {
	return Def{
		Name: PacketsTotal, OTelName: OTelPackets, Unit: "{packet}", Kind: KindCounter, Capped: true,
		Help:   "Packets sent from source to destination, exact from per-connection counters; a connection seen at two interfaces of the node counts once, where its initiator's packets enter the node.",
		Labels: endpointLabels(),
	}
}

func trackedDef() Def {
	return Def{
		Name: TrafficTrackedConnections, OTelName: OTelTrafficTrackedConnections, Unit: "{connection}",
		Kind: KindGauge, Observed: true,
		Help: "Connections whose last counters are kept to count bytes and packets exactly.",
	}
}

func evictedDef() Def {
	return Def{
		Name: TrafficEvictedConnectionsTotal, OTelName: OTelTrafficEvictedConnections, Unit: "{connection}",
		Kind: KindCounter, Observed: true,
		Help: "Tracked connections forgotten because the table was full; their next record may be counted twice.",
	}
}

// traffic counts bytes and packets. Flow records carry cumulative counters
// per connection and interface, so it keeps each connection's last counters
// (Deltas) and adds only the difference.
type traffic struct {
	series         *family[trafficKey] // bytes, packets
	deltas         *Deltas
	srcCtx, dstCtx []Context
	names          *identityTexts
}

type trafficKey struct{ src, dst endpointKey }

func newTraffic(m *Metrics) *traffic {
	return &traffic{
		series: newFamily(m, func(k trafficKey) []LabelValue {
			return []LabelValue{str(k.src.label()), str(k.dst.label())}
		}, &m.defs.bytes, &m.defs.packets),
		deltas: NewDeltas(m.opts.MaxConnections),
		srcCtx: m.opts.SourceContext,
		dstCtx: m.opts.DestinationContext,
		names:  m.identities,
	}
}

// observe adds the flow's counters since the connection's previous record.
func (t *traffic) observe(f *api.Flow) {
	switch f.Event {
	case api.EventStart, api.EventState, api.EventPeriodic, api.EventEnd:
	default:
		return // socket events carry no traffic counters
	}
	d := t.deltas.Delta(f)
	if d.PacketsForward|d.BytesForward != 0 {
		s := t.series.get(trafficKey{endpointOf(&f.Source, t.srcCtx, t.names), endpointOf(&f.Destination, t.dstCtx, t.names)})
		s[0].Record(float64(d.BytesForward))
		s[1].Record(float64(d.PacketsForward))
	}
	if d.PacketsReply|d.BytesReply != 0 {
		// Replies are sent by the destination to the source.
		s := t.series.get(trafficKey{endpointOf(&f.Destination, t.srcCtx, t.names), endpointOf(&f.Source, t.dstCtx, t.names)})
		s[0].Record(float64(d.BytesReply))
		s[1].Record(float64(d.PacketsReply))
	}
}

// endpointKey is an endpoint's label under a context, kept in parts so that
// building the key allocates nothing; label() joins them once per series.
// Under ContextIdentity, a is the identity's label text, made once per
// identity (identityTexts).
type endpointKey struct {
	ctx  Context
	a, b string
}

// endpointOf returns e's label key under the first context with a value;
// names makes the identity context's text.
func endpointOf(e *api.Endpoint, ctxs []Context, names *identityTexts) endpointKey {
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
			if len(e.Labels) > 0 {
				return endpointKey{ctx: c, a: names.text(e.Identity, e.Labels)}
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
		return k.a
	}
	return ""
}
