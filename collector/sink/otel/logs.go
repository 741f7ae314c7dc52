package otel

import (
	"context"
	"fmt"
	"time"

	"github.com/periscope-dev/periscope/api"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Body chooses what a flow's log record carries as its body.
type Body uint8

// Bodies.
const (
	// BodyJSON is the flow's Hubble-shaped JSON (api.AppendJSON), the same
	// line /api/v1/flows serves: a log back end can parse it with the tools
	// that read Hubble's output, and nothing of the record is lost.
	BodyJSON Body = iota
	// BodySummary is Hubble's one-line summary ("TCP Flags: SYN, ACK"); the
	// attributes then carry the rest.
	BodySummary
)

// EventName is the event name of every flow log record.
const EventName = "periscope.flow"

// Logs exports one OTLP log record per flow record. It is a sink.Sink, to be
// put behind a sink.Queue: Write is called from one goroutine at a time.
type Logs struct {
	logger log.Logger
	flush  func(context.Context) error // nil when the provider cannot flush
	body   Body
	buf    []byte
	attrs  []attribute.KeyValue
}

// NewLogs returns a sink that emits flow records on a logger of lp. When lp
// has a ForceFlush method (the SDK's LoggerProvider has), Write calls it after
// emitting its batch, so that a batch is exported, or fails, within Write.
func NewLogs(lp log.LoggerProvider, body Body) *Logs {
	l := &Logs{
		logger: lp.Logger(scopeName, log.WithInstrumentationVersion(version()), log.WithSchemaURL(semconv.SchemaURL)),
		body:   body,
	}
	if f, ok := lp.(interface{ ForceFlush(context.Context) error }); ok {
		l.flush = f.ForceFlush
	}
	return l
}

// Name is the sink's name, "otel".
func (l *Logs) Name() string { return "otel" }

// Write emits one log record per flow and exports them before it returns.
// A failed export fails the whole batch: the queue's retry emits it again.
func (l *Logs) Write(ctx context.Context, batch []api.Flow) error {
	now := time.Now()
	for i := range batch {
		var r log.Record
		l.record(&r, &batch[i], now)
		l.logger.Emit(traced(ctx, &batch[i]), r)
	}
	if l.flush == nil {
		return nil
	}
	if err := l.flush(ctx); err != nil {
		return fmt.Errorf("export %d flow log records: %w", len(batch), err)
	}
	return nil
}

// traced is ctx with, when f's L7 record carries a trace ID, a span
// context of that trace: the SDK copies it into the log record's trace_id,
// so a trace back end links the flow to its trace.
func traced(ctx context.Context, f *api.Flow) context.Context {
	if f.L7 == nil || f.L7.TraceID == "" {
		return ctx
	}
	id, err := trace.TraceIDFromHex(f.L7.TraceID)
	if err != nil {
		return ctx
	}
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: id}))
}

// record fills r from f.
func (l *Logs) record(r *log.Record, f *api.Flow, observed time.Time) {
	r.SetEventName(EventName)
	r.SetTimestamp(f.Time)
	r.SetObservedTimestamp(observed)
	switch f.Verdict {
	case api.VerdictDropped:
		r.SetSeverity(log.SeverityWarn)
		r.SetSeverityText("WARN")
	case api.VerdictError:
		r.SetSeverity(log.SeverityError)
		r.SetSeverityText("ERROR")
	default:
		r.SetSeverity(log.SeverityInfo)
		r.SetSeverityText("INFO")
	}
	switch l.body {
	case BodySummary:
		l.buf = f.AppendSummary(l.buf[:0])
	default:
		l.buf = api.AppendJSON(l.buf[:0], f)
	}
	r.SetBody(attribute.StringValue(string(l.buf)))
	l.attrs = appendFlowAttrs(l.attrs[:0], f)
	r.AddAttributes(l.attrs...)
}

// appendFlowAttrs appends the log attributes of f: semantic-convention names
// where one exists, periscope.* otherwise; empty values are left out.
func appendFlowAttrs(a []attribute.KeyValue, f *api.Flow) []attribute.KeyValue {
	a = append(a,
		KeyEvent.String(f.Event.String()),
		KeyVerdict.String(f.Verdict.String()),
		KeyTrafficDirection.String(f.TrafficDirection.String()),
		KeyFlowType.String(f.Type.String()),
	)
	if f.Verdict == api.VerdictDropped || f.DropReason != api.DropReasonUnknown {
		a = append(a, KeyDropReason.String(f.DropReason.String()))
	}
	if f.IsReply {
		a = append(a, KeyIsReply.Bool(true))
	}
	if f.UUID != ([16]byte{}) {
		a = append(a, KeyFlowID.String(uuidString(&f.UUID)))
	}
	if f.NodeName != "" {
		a = append(a, KeyNodeName.String(f.NodeName))
	}
	if f.L4.Protocol != 0 {
		a = append(a, transport(f.L4.Protocol))
	}
	if f.IP.Version != api.IPNotUsed {
		a = append(a, networkType(f.IP.Version))
	}
	if f.IP.Source.IsValid() {
		a = append(a, semconv.SourceAddress(f.IP.Source.String()))
	}
	if f.IP.Destination.IsValid() {
		a = append(a, semconv.DestinationAddress(f.IP.Destination.String()))
	}
	switch f.L4.Protocol {
	case api.ProtoTCP, api.ProtoUDP, api.ProtoSCTP:
		a = append(a, semconv.SourcePort(int(f.L4.SourcePort)), semconv.DestinationPort(int(f.L4.DestinationPort)))
		if f.L4.Protocol == api.ProtoTCP && f.L4.TCPFlags != 0 {
			a = append(a, KeyTCPFlags.String(f.L4.TCPFlags.String()))
		}
	case api.ProtoICMPv4, api.ProtoICMPv6:
		a = append(a, KeyICMPType.Int(int(f.L4.ICMPType)), KeyICMPCode.Int(int(f.L4.ICMPCode)))
	}
	if f.Interface.Name != "" {
		a = append(a, semconv.NetworkInterfaceName(f.Interface.Name))
	}
	if f.InitiatorHook != api.TrafficDirectionUnknown {
		a = append(a, KeyInitiatorHook.String(f.InitiatorHook.String()))
	}
	a = append(a,
		KeyPacketsForward.Int64(toInt64(f.Counters.PacketsForward)),
		KeyBytesForward.Int64(toInt64(f.Counters.BytesForward)),
		KeyPacketsReply.Int64(toInt64(f.Counters.PacketsReply)),
		KeyBytesReply.Int64(toInt64(f.Counters.BytesReply)),
	)
	if !f.StartTime.IsZero() {
		a = append(a, KeyStartTime.String(f.StartTime.UTC().Format(time.RFC3339Nano)))
	}
	if ep := observedEndpoint(f); ep != nil {
		if ep.Namespace != "" {
			a = append(a, semconv.K8SNamespaceName(ep.Namespace))
		}
		if ep.PodName != "" {
			a = append(a, semconv.K8SPodName(ep.PodName))
		}
	}
	a = appendEndpointAttrs(a, &sourceKeys, &f.Source)
	a = appendEndpointAttrs(a, &destinationKeys, &f.Destination)
	if f.Process.PID != 0 {
		a = append(a, semconv.ProcessPID(int(f.Process.PID)))
	}
	if f.Process.Comm != "" {
		a = append(a, semconv.ProcessExecutableName(f.Process.Comm))
	}
	if f.Process.CgroupID != 0 {
		a = append(a, KeyCgroupID.Int64(toInt64(f.Process.CgroupID)))
	}
	if p := &f.DestinationProcess; *p != (api.Process{}) {
		a = append(a, KeyDestinationPID.Int(int(p.PID)))
		if p.Comm != "" {
			a = append(a, KeyDestinationComm.String(p.Comm))
		}
		if p.CgroupID != 0 {
			a = append(a, KeyDestinationCgroupID.Int64(toInt64(p.CgroupID)))
		}
	}
	if f.Paired() {
		a = appendOtherObservation(a, &f.Other)
	}
	for _, p := range [...]struct {
		k     attribute.Key
		names []api.PolicyRef
	}{
		{KeyIngressAllowedBy, f.IngressAllowedBy},
		{KeyEgressAllowedBy, f.EgressAllowedBy},
		{KeyIngressDeniedBy, f.IngressDeniedBy},
		{KeyEgressDeniedBy, f.EgressDeniedBy},
	} {
		if len(p.names) > 0 {
			refs := make([]string, len(p.names))
			for i, r := range p.names {
				refs[i] = r.Ref()
			}
			a = append(a, p.k.StringSlice(refs))
		}
	}
	return a
}

// appendOtherObservation appends the attributes of a record's second
// observation point (api.Flow.Other): its interface, hooks, verdict and its
// own counts, never added to the record's.
func appendOtherObservation(a []attribute.KeyValue, o *api.Observation) []attribute.KeyValue {
	a = append(a, KeyOtherInterfaceIndex.Int64(int64(o.Interface.Index)))
	if o.Interface.Name != "" {
		a = append(a, KeyOtherInterfaceName.String(o.Interface.Name))
	}
	if o.InitiatorHook != api.TrafficDirectionUnknown {
		a = append(a, KeyOtherInitiatorHook.String(o.InitiatorHook.String()))
	}
	a = append(a,
		KeyOtherTrafficDirection.String(o.TrafficDirection.String()),
		KeyOtherVerdict.String(o.Verdict.String()),
	)
	if o.Verdict == api.VerdictDropped || o.DropReason != api.DropReasonUnknown {
		a = append(a, KeyOtherDropReason.String(o.DropReason.String()))
	}
	return append(a,
		KeyOtherPacketsForward.Int64(toInt64(o.Counters.PacketsForward)),
		KeyOtherBytesForward.Int64(toInt64(o.Counters.BytesForward)),
		KeyOtherPacketsReply.Int64(toInt64(o.Counters.PacketsReply)),
		KeyOtherBytesReply.Int64(toInt64(o.Counters.BytesReply)),
	)
}

// observedEndpoint is the endpoint the flow was observed for, whose
// namespace and pod become k8s.namespace.name and k8s.pod.name: the
// initiator for EGRESS, the responder for INGRESS, else the local endpoint
// (non-zero ID) if there is one.
func observedEndpoint(f *api.Flow) *api.Endpoint {
	switch f.TrafficDirection {
	case api.TrafficDirectionEgress:
		return &f.Source
	case api.TrafficDirectionIngress:
		return &f.Destination
	}
	switch {
	case f.Source.ID != 0:
		return &f.Source
	case f.Destination.ID != 0:
		return &f.Destination
	}
	return nil
}

func appendEndpointAttrs(a []attribute.KeyValue, k *endpointKeys, e *api.Endpoint) []attribute.KeyValue {
	if e.Namespace != "" {
		a = append(a, k.namespace.String(e.Namespace))
	}
	if e.PodName != "" {
		a = append(a, k.pod.String(e.PodName))
	}
	if e.Workload != "" {
		a = append(a, k.workload.String(e.Workload))
	}
	if e.Identity != 0 {
		a = append(a, k.identity.Int64(int64(e.Identity)))
	}
	if e.ID != 0 {
		a = append(a, k.id.Int64(int64(e.ID)))
	}
	if len(e.Labels) > 0 {
		a = append(a, k.labels.StringSlice(e.Labels))
	}
	return a
}

// uuidString formats u as 8-4-4-4-12 hex digits.
func uuidString(u *[16]byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return string(b[:])
}
