package metrics

import (
	"strconv"

	"github.com/periscope-dev/periscope/api"
	"go.opentelemetry.io/otel/attribute"
)

// The HTTP golden signals, from L7 records as Hubble's httpV2 metrics count
// them: on responses, which carry the status and the latency.

func httpRequestsDef() Def {
	return Def{
		Name: HTTPRequestsTotal, OTelName: OTelHTTPRequests, Unit: "{request}", Kind: KindCounter, Capped: true,
		Help: "HTTP requests, counted on their responses in L7 records, by method, protocol, response status code (0 when unknown; in OTLP left out) and reporter (client: the requester's side reported it, server: the responder's), between source (the requester) and destination (the responder).",
		Labels: append(endpointLabels(),
			Label{Name: LabelMethod, Key: keyMethod},
			Label{Name: LabelProtocol, Key: keyProtocolVersion},
			Label{Name: LabelStatus, Key: keyStatusCode},
			Label{Name: LabelReporter, Key: KeyReporter},
		),
	}
}

// httpDurationDef's reporter chooses the OTLP instrument, as the semantic
// conventions want; its status and protocol are OTLP's only, as Hubble's
// histogram has neither.
func httpDurationDef(buckets []float64) Def {
	return Def{
		Name: HTTPRequestDurationSeconds, OTelName: OTelHTTPRequestDuration, Unit: "s", Kind: KindHistogram, Capped: true,
		Buckets: buckets,
		Help:    "Time from an HTTP request to its response, from L7 records, by method and reporter, between source (the requester) and destination (the responder).",
		Labels: append(endpointLabels(),
			Label{Name: LabelMethod, Key: keyMethod},
			Label{Name: LabelReporter, Instruments: map[string]string{
				ReporterClient: OTelHTTPClientRequestDuration,
				ReporterServer: OTelHTTPServerRequestDuration,
			}},
			Label{Key: keyStatusCode},
			Label{Key: keyProtocolVersion},
		),
	}
}

// httpKey is an HTTP exchange's label set. Its strings are constants of
// this file, so building it allocates nothing.
type httpKey struct {
	src, dst endpointKey
	method   string // one of httpMethods, or methodOther
	protocol string // one of httpProtocols' names, "", or protocolOther
	status   uint16 // 0 when outside 100..599
	reporter string // one of Reporter*
}

// httpSignals counts HTTP requests and their durations.
type httpSignals struct {
	requests, durations *family[httpKey]
	srcCtx, dstCtx      []Context
	names               *identityTexts
}

func newHTTPSignals(m *Metrics) *httpSignals {
	return &httpSignals{
		requests: newFamily(m, func(k httpKey) []LabelValue {
			return []LabelValue{str(k.src.label()), str(k.dst.label()),
				methodValue(k.method), protocolVersionValue(k.protocol), statusValue(k.status), str(k.reporter)}
		}, &m.defs.httpRequests),
		durations: newFamily(m, func(k httpKey) []LabelValue {
			return []LabelValue{str(k.src.label()), str(k.dst.label()),
				methodValue(k.method), str(k.reporter), statusValue(k.status), protocolVersionValue(k.protocol)}
		}, &m.defs.httpDuration),
		srcCtx: m.opts.SourceContext,
		dstCtx: m.opts.DestinationContext,
		names:  m.identities,
	}
}

// observe counts an HTTP response: the request it answers and the time it
// took. Requests are not counted on their own records: their responses say
// how they ended.
func (h *httpSignals) observe(f *api.Flow) {
	l7 := f.L7
	if l7.Type != api.L7TypeResponse {
		return
	}
	// A response goes from the responder to the requester: the labels
	// name the requester as the source, as Hubble's do.
	k := httpKey{
		src:      endpointOf(&f.Destination, h.srcCtx, h.names),
		dst:      endpointOf(&f.Source, h.dstCtx, h.names),
		method:   normalizeMethod(l7.HTTP.Method),
		protocol: normalizeProtocol(l7.HTTP.Protocol),
		reporter: reporter(f.TrafficDirection),
	}
	if c := l7.HTTP.Code; c >= 100 && c <= 599 {
		k.status = uint16(c)
	}
	h.requests.get(k)[0].Record(1)
	h.durations.get(k)[0].Record(float64(l7.LatencyNs) / 1e9)
}

// reporter is the side that reported an L7 record: the requester's on its
// way out (EGRESS), the responder's on its way in (INGRESS).
func reporter(d api.TrafficDirection) string {
	switch d {
	case api.TrafficDirectionEgress:
		return ReporterClient
	case api.TrafficDirectionIngress:
		return ReporterServer
	}
	return ReporterUnknown
}

// httpMethods are the methods given their own label value; any other is
// methodOther, so that a client cannot create series at will.
var httpMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// methodOther stands for any other method: "other" in Prometheus, the
// semantic conventions' "_OTHER" in OpenTelemetry.
const methodOther = "other"

func normalizeMethod(method string) string {
	for _, known := range httpMethods {
		if method == known {
			return known
		}
	}
	return methodOther
}

func methodValue(method string) LabelValue {
	if method == methodOther {
		return LabelValue{Prom: methodOther, OTel: attribute.StringValue("_OTHER")}
	}
	return str(method)
}

// httpProtocols are the protocols given their own label value, with their
// network.protocol.version; any other is protocolOther.
var httpProtocols = [...]struct{ name, version string }{
	{"HTTP/1.0", "1.0"}, {"HTTP/1.1", "1.1"}, {"HTTP/2", "2"}, {"HTTP/3", "3"},
}

const protocolOther = "other"

func normalizeProtocol(p string) string {
	if p == "" {
		return ""
	}
	for _, known := range httpProtocols {
		if p == known.name {
			return known.name
		}
	}
	return protocolOther
}

// protocolVersionValue leaves network.protocol.version out when the
// protocol is unknown.
func protocolVersionValue(p string) LabelValue {
	for _, known := range httpProtocols {
		if p == known.name {
			return LabelValue{Prom: p, OTel: attribute.StringValue(known.version)}
		}
	}
	return LabelValue{Prom: p}
}

// statusValue leaves http.response.status_code out when it is unknown (0).
func statusValue(status uint16) LabelValue {
	if status == 0 {
		return LabelValue{Prom: "0"}
	}
	return LabelValue{Prom: strconv.Itoa(int(status)), OTel: attribute.IntValue(int(status))}
}
