package accesslog

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/proto"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/proxy/xds"
)

var protocols = map[alsdata.HTTPAccessLogEntry_HTTPVersion]string{
	alsdata.HTTPAccessLogEntry_HTTP10: "HTTP/1.0",
	alsdata.HTTPAccessLogEntry_HTTP11: "HTTP/1.1",
	alsdata.HTTPAccessLogEntry_HTTP2:  "HTTP/2",
	alsdata.HTTPAccessLogEntry_HTTP3:  "HTTP/3",
}

// exchange is what both records of an entry share: the client and the
// server, the redirect's endpoint and direction, the request's start.
type exchange struct {
	client, server netip.AddrPort
	endpoint       uint32
	direction      api.TrafficDirection
	start          time.Time
}

// exchangeOf reads e's addresses, endpoint and direction.
func exchangeOf(e *httpEntry) (exchange, error) {
	var x exchange
	var err error
	if x.client, err = socketAddress(e.client); err != nil {
		return x, fmt.Errorf("downstream remote address: %w", err)
	}
	if x.server, err = socketAddress(e.upstream); err != nil {
		// No upstream (refused or failed before): the original destination.
		if x.server, err = socketAddress(e.local); err != nil {
			return x, fmt.Errorf("downstream local address: %w", err)
		}
	}
	if ep, err := strconv.ParseUint(string(e.endpoint), 10, 32); err == nil {
		x.endpoint = uint32(ep)
	}
	switch string(e.direction) {
	case "ingress":
		x.direction = api.TrafficDirectionIngress
	case "egress":
		x.direction = api.TrafficDirectionEgress
	}
	x.start = timestamp(e.start)
	return x, nil
}

// fill sets f (overwritten whole) to an L7 record from src to dst of x.
func (x *exchange) fill(f *api.Flow, src, dst netip.AddrPort, at time.Time) {
	*f = api.Flow{}
	f.StartTime, f.Time, f.EndTime = x.start, at, at
	_, _ = rand.Read(f.UUID[:])
	f.Type = api.FlowTypeL7
	f.IP.Source, f.IP.Destination = src.Addr().Unmap(), dst.Addr().Unmap()
	f.IP.Version = api.IPv4
	if f.IP.Source.Is6() {
		f.IP.Version = api.IPv6
	}
	f.L4.Protocol = api.ProtoTCP
	f.L4.SourcePort, f.L4.DestinationPort = src.Port(), dst.Port()
	f.Interface.Index = x.endpoint
	f.TrafficDirection = x.direction
}

// request fills f with the entry's REQUEST record, as Hubble's L7 parser
// makes one: from the client to the server at the request's start, the
// method, URL, protocol and request headers, and the L7 policy's verdict
// on it (verdict).
func (s *Source) request(x *exchange, e *httpEntry, f *api.Flow) error {
	x.fill(f, x.client, x.server, x.start)
	if err := verdict(f, e.code, e.details, e.metadata); err != nil {
		return err
	}
	f.L7 = &api.L7{Type: api.L7TypeRequest, TraceID: traceID(e), HTTP: &api.HTTP{
		Method:   core.RequestMethod(e.method).String(),
		URL:      url(e),
		Protocol: protocols[alsdata.HTTPAccessLogEntry_HTTPVersion(e.protocol)],
		Headers:  s.headers(e, true),
	}}
	return nil
}

// response fills f with the entry's RESPONSE record and reports whether
// it has one (a response was sent): like Hubble's, from the server back to
// the client (IsReply) when the response ended, with its code, latency
// (the request's start to the first byte of the upstream's response, or of
// Envoy's own) and headers; FORWARDED, as Cilium's proxy reports the 403
// of a request it denied (the request's record carries the decision).
func (s *Source) response(x *exchange, e *httpEntry, f *api.Flow) bool {
	if !e.hasCode || e.code == 0 {
		return false
	}
	at := time.Now()
	if last, ok := duration(e.lastDownstreamTx); ok && last >= 0 {
		at = x.start.Add(last)
	}
	x.fill(f, x.server, x.client, at)
	f.Verdict, f.IsReply = api.VerdictForwarded, true
	l7 := &api.L7{Type: api.L7TypeResponse, TraceID: traceID(e), HTTP: &api.HTTP{
		Code:     e.code,
		Method:   core.RequestMethod(e.method).String(),
		URL:      url(e),
		Protocol: protocols[alsdata.HTTPAccessLogEntry_HTTPVersion(e.protocol)],
		Headers:  s.headers(e, false),
	}}
	if d, ok := duration(e.firstUpstreamRx); ok {
		l7.LatencyNs = uint64(d)
	} else if d, ok := duration(e.firstDownstreamTx); ok {
		l7.LatencyNs = uint64(d) // a response of Envoy's own
	}
	f.L7 = l7
	return true
}

// verdict sets the request record's verdict: DROPPED (POLICY_DENIED)
// naming the policies when the L7 policy refused the request (the details of Envoy's
// RBAC reply name its matched policy), AUDIT naming them when the audit
// engine would have, else FORWARDED.
func verdict(f *api.Flow, code uint32, details, metadata []byte) error {
	f.Verdict = api.VerdictForwarded
	var denied []api.PolicyRef
	switch {
	case code == 403 && bytes.HasPrefix(details, []byte(xds.RBACDeniedDetail)):
		f.Verdict, f.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
		denied = xds.PolicyRefs(strings.TrimSuffix(strings.TrimPrefix(string(details), xds.RBACDeniedDetail), "]"))
	case len(metadata) == 0:
		return nil
	default:
		// Only with an audit engine: decoded the slow way.
		var md core.Metadata
		if err := proto.Unmarshal(metadata, &md); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		rbac := md.GetFilterMetadata()[xds.RBACFilter].GetFields()
		if rbac[xds.ShadowResultKey].GetStringValue() != xds.ShadowDenied {
			return nil
		}
		f.Verdict, f.DropReason = api.VerdictAudit, api.DropReasonPolicyDenied
		denied = xds.PolicyRefs(rbac[xds.ShadowPolicyKey].GetStringValue())
	}
	if f.TrafficDirection == api.TrafficDirectionEgress {
		f.EgressDeniedBy = denied
	} else {
		f.IngressDeniedBy = denied
	}
	return nil
}

// url is the request's absolute URL, as Hubble shows it.
func url(e *httpEntry) string {
	scheme := e.scheme
	if len(scheme) == 0 {
		scheme = []byte("http")
	}
	b := make([]byte, 0, len(scheme)+3+len(e.authority)+len(e.path))
	b = append(append(append(append(b, scheme...), "://"...), e.authority...), e.path...)
	return string(b)
}

// headers are the request's logged headers (request true) or the
// response's, sorted by name, sensitive values redacted.
func (s *Source) headers(e *httpEntry, request bool) []api.HTTPHeader {
	n := len(e.responseHeaders)
	if request {
		n = 4 + len(e.requestHeaders)
	}
	hs := make([]api.HTTPHeader, 0, n)
	add := func(k string, v []byte) {
		if len(v) == 0 {
			return
		}
		value := Redacted
		if !s.redact[k] {
			value = string(v)
		}
		hs = append(hs, api.HTTPHeader{Key: k, Value: value})
	}
	if request {
		add("user-agent", e.userAgent)
		add("referer", e.referer)
		add("x-request-id", e.requestID)
		add("x-forwarded-for", e.forwardedFor)
		for _, h := range e.requestHeaders {
			add(headerName(h.key), h.value)
		}
	} else {
		for _, h := range e.responseHeaders {
			add(headerName(h.key), h.value)
		}
	}
	slices.SortStableFunc(hs, func(a, b api.HTTPHeader) int { return strings.Compare(a.Key, b.Key) })
	return hs
}

// traceID is the trace ID of the request's traceparent header, "" for
// none or a malformed one (api.TraceIDFromParent).
func traceID(e *httpEntry) string {
	for _, h := range e.requestHeaders {
		if strings.EqualFold(string(h.key), api.TraceParentHeader) {
			return api.TraceIDFromParent(string(h.value))
		}
	}
	return ""
}

// headerName is the lower-case name of a logged header: one of the
// configured ones without allocating, else a new string.
func headerName(k []byte) string {
	for _, names := range [][]string{DefaultRequestHeaders, DefaultResponseHeaders} {
		for _, n := range names {
			if string(k) == n {
				return n
			}
		}
	}
	return strings.ToLower(string(k))
}
