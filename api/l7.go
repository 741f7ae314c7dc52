package api

import "strconv"

// L7FlowType is Hubble's flow.L7FlowType: which part of an exchange an L7
// record describes.
type L7FlowType uint8

// L7FlowType values keep Hubble's numbering.
const (
	L7TypeUnknown  L7FlowType = 0
	L7TypeRequest  L7FlowType = 1
	L7TypeResponse L7FlowType = 2
	L7TypeSample   L7FlowType = 3
)

var l7FlowTypeNames = [...]string{
	L7TypeUnknown:  "UNKNOWN_L7_TYPE",
	L7TypeRequest:  "REQUEST",
	L7TypeResponse: "RESPONSE",
	L7TypeSample:   "SAMPLE",
}

// String returns Hubble's name of the L7 flow type, e.g. "REQUEST".
func (t L7FlowType) String() string {
	if n := enumName(l7FlowTypeNames[:], int(t)); n != "" {
		return n
	}
	return strconv.Itoa(int(t))
}

// ParseL7FlowType reads an L7 flow type name (case-insensitive) or number.
func ParseL7FlowType(s string) (L7FlowType, error) {
	n, err := parseEnum("L7 flow type", l7FlowTypeNames[:], s, 255)
	return L7FlowType(n), err
}

// L7 is the application-layer part of an L7 flow (Hubble's flow.Layer7).
// Exactly one of HTTP, DNS and Kafka is set. A producer builds a new L7 for
// every record and never changes it after emitting the flow: stores and
// sinks share it by pointer.
type L7 struct {
	Type L7FlowType
	// LatencyNs is, on a RESPONSE, the time since its request.
	LatencyNs uint64
	// TraceID is the W3C trace ID of the request's traceparent header
	// (TraceIDFromParent), on the request's record and its response's;
	// "" when it had none. Hubble carries it as flow.trace_context.
	TraceID string
	HTTP    *HTTP
	DNS     *DNS
	Kafka   *Kafka
}

// HTTP is one HTTP request or response (Hubble's flow.HTTP).
type HTTP struct {
	Code     uint32 // status code; 0 on a request
	Method   string
	URL      string
	Protocol string // "HTTP/1.1", "HTTP/2"
	Headers  []HTTPHeader
}

// HTTPHeader is one header as Hubble's flow.HTTPHeader carries it.
type HTTPHeader struct {
	Key   string
	Value string
}

// DNS is one DNS query or answer (Hubble's flow.DNS).
type DNS struct {
	Query             string   // the queried name, fully qualified ("example.com.")
	IPs               []string // addresses in the answer
	TTL               uint32   // the answer's lowest TTL
	CNAMEs            []string
	ObservationSource string // who saw it, e.g. "proxy"
	Rcode             uint32
	Qtypes            []string // "A", "AAAA"
	RRtypes           []string // types of the answer's records
}

// Kafka is one Kafka request or response (Hubble's flow.Kafka).
type Kafka struct {
	ErrorCode     int32
	APIVersion    int32
	APIKey        string
	CorrelationID int32
	Topic         string
}

// L7 protocols, as Protocol names them (and Hubble's protocol filter and
// ClickHouse's l7_protocol column spell them).
const (
	L7ProtocolDNS   = "dns"
	L7ProtocolHTTP  = "http"
	L7ProtocolKafka = "kafka"
)

// Protocol names the record l carries: L7ProtocolDNS, L7ProtocolHTTP or
// L7ProtocolKafka; "" for none or a nil l. Hubble's Layer7 holds one
// record, so of an L7 that breaks the one-of every reader (the Hubble API,
// ClickHouse, filters) takes the first in flow.proto's order: DNS, HTTP,
// Kafka.
func (l *L7) Protocol() string {
	switch {
	case l == nil:
		return ""
	case l.DNS != nil:
		return L7ProtocolDNS
	case l.HTTP != nil:
		return L7ProtocolHTTP
	case l.Kafka != nil:
		return L7ProtocolKafka
	}
	return ""
}
