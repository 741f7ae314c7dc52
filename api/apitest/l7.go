package apitest

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// The L7 test source: records shaped as a proxy's access log produces them
// (Hubble's L7 flows). A request goes from the client to the server; its
// response, like Hubble's, from the server back to the client with IsReply
// set and the latency since the request. Neither has an interface: the
// collector finds the endpoints by address and keeps the TrafficDirection
// the producer set.

// NewL7Source returns a Source named "l7" that emits flows (built with
// HTTPExchange.Flows and DNSExchange.Flows), then Live, which holds up to
// buffer flows.
func NewL7Source(flows []api.Flow, buffer int) *Source {
	s := NewSource(flows, buffer)
	s.Label = "l7"
	return s
}

// HTTPExchange is one HTTP request and its response.
type HTTPExchange struct {
	Client, Server netip.AddrPort
	Method, URL    string
	Protocol       string // "HTTP/1.1" when empty
	Code           uint32
	Latency        time.Duration
	// Direction is the TrafficDirection of both records: EGRESS when the
	// proxy sits at the client (the default), INGRESS at the server.
	Direction api.TrafficDirection
	// RequestHeaders go on the request, ResponseHeaders on the response.
	RequestHeaders, ResponseHeaders []api.HTTPHeader
	// TraceID goes on both (the request's traceparent's).
	TraceID string
}

// Flows returns the request at t and the response Latency later.
func (e HTTPExchange) Flows(t time.Time) []api.Flow {
	proto := e.Protocol
	if proto == "" {
		proto = "HTTP/1.1"
	}
	req := l7Flow(t, 'h', 1, e.Client, e.Server, api.ProtoTCP, e.Direction, &api.L7{
		Type:    api.L7TypeRequest,
		TraceID: e.TraceID,
		HTTP:    &api.HTTP{Method: e.Method, URL: e.URL, Protocol: proto, Headers: e.RequestHeaders},
	})
	resp := l7Flow(t.Add(e.Latency), 'h', 2, e.Server, e.Client, api.ProtoTCP, e.Direction, &api.L7{
		Type:      api.L7TypeResponse,
		LatencyNs: uint64(e.Latency),
		TraceID:   e.TraceID,
		HTTP:      &api.HTTP{Code: e.Code, Method: e.Method, URL: e.URL, Protocol: proto, Headers: e.ResponseHeaders},
	})
	resp.UUID = req.UUID
	resp.UUID[15] = 2
	return []api.Flow{req, resp}
}

// DNSExchange is one DNS query and its answer, seen by a DNS proxy.
type DNSExchange struct {
	Client, Server netip.AddrPort
	Query          string // fully qualified: "example.com."
	Qtype          string // "A" when empty
	IPs            []string
	CNAMEs         []string
	TTL            uint32
	Rcode          uint32
	Latency        time.Duration
	// Direction is as in HTTPExchange.
	Direction api.TrafficDirection
}

// Flows returns the query at t and the answer Latency later.
func (e DNSExchange) Flows(t time.Time) []api.Flow {
	qtype := e.Qtype
	if qtype == "" {
		qtype = "A"
	}
	req := l7Flow(t, 'd', 1, e.Client, e.Server, api.ProtoUDP, e.Direction, &api.L7{
		Type: api.L7TypeRequest,
		DNS:  &api.DNS{Query: e.Query, ObservationSource: "proxy", Qtypes: []string{qtype}},
	})
	answer := &api.DNS{Query: e.Query, IPs: e.IPs, TTL: e.TTL, CNAMEs: e.CNAMEs, ObservationSource: "proxy",
		Rcode: e.Rcode, Qtypes: []string{qtype}}
	for range e.CNAMEs {
		answer.RRtypes = append(answer.RRtypes, "CNAME")
	}
	for range e.IPs {
		answer.RRtypes = append(answer.RRtypes, qtype)
	}
	resp := l7Flow(t.Add(e.Latency), 'd', 2, e.Server, e.Client, api.ProtoUDP, e.Direction, &api.L7{
		Type: api.L7TypeResponse, LatencyNs: uint64(e.Latency), DNS: answer,
	})
	resp.UUID = req.UUID
	resp.UUID[15] = 2
	return []api.Flow{req, resp}
}

// l7Flow builds one L7 record from src to dst. Its UUID holds the time, the
// kind and which record of the exchange it is, so exchanges at distinct
// times have distinct UUIDs.
func l7Flow(t time.Time, kind byte, n byte, src, dst netip.AddrPort, proto uint8, dir api.TrafficDirection, l7 *api.L7) api.Flow {
	if dir == api.TrafficDirectionUnknown {
		dir = api.TrafficDirectionEgress
	}
	version := api.IPv4
	if src.Addr().Is6() {
		version = api.IPv6
	}
	f := api.Flow{
		Time:             t,
		Verdict:          api.VerdictForwarded,
		Type:             api.FlowTypeL7,
		IP:               api.IP{Source: src.Addr(), Destination: dst.Addr(), Version: version},
		L4:               api.L4{Protocol: proto, SourcePort: src.Port(), DestinationPort: dst.Port()},
		TrafficDirection: dir,
		IsReply:          l7.Type == api.L7TypeResponse,
		L7:               l7,
	}
	binary.BigEndian.PutUint64(f.UUID[:8], uint64(t.UnixNano()))
	f.UUID[8] = kind
	f.UUID[15] = n
	return f
}
