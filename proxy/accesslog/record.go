package accesslog

import (
	"bytes"
	"crypto/rand"
	"fmt"
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

// record fills f (overwritten whole) from e; the L7 part is new.
func (s *Source) record(e *httpEntry, f *api.Flow) error {
	client, err := socketAddress(e.client)
	if err != nil {
		return fmt.Errorf("downstream remote address: %w", err)
	}
	server, err := socketAddress(e.upstream)
	if err != nil {
		// No upstream (refused or failed before): the original destination.
		if server, err = socketAddress(e.local); err != nil {
			return fmt.Errorf("downstream local address: %w", err)
		}
	}
	*f = api.Flow{}
	start := timestamp(e.start)
	f.StartTime = start
	if last, ok := duration(e.lastDownstreamTx); ok && last >= 0 {
		f.Time = start.Add(last)
	} else {
		f.Time = time.Now()
	}
	f.EndTime = f.Time
	_, _ = rand.Read(f.UUID[:])
	f.Type = api.FlowTypeL7
	f.IP.Source, f.IP.Destination = client.Addr().Unmap(), server.Addr().Unmap()
	f.IP.Version = api.IPv4
	if f.IP.Source.Is6() {
		f.IP.Version = api.IPv6
	}
	f.L4.Protocol = api.ProtoTCP
	f.L4.SourcePort, f.L4.DestinationPort = client.Port(), server.Port()
	if ep, err := strconv.ParseUint(string(e.endpoint), 10, 32); err == nil {
		f.Interface.Index = uint32(ep)
	}
	switch string(e.direction) {
	case "ingress":
		f.TrafficDirection = api.TrafficDirectionIngress
	case "egress":
		f.TrafficDirection = api.TrafficDirectionEgress
	}
	if err := verdict(f, e.code, e.details, e.metadata); err != nil {
		return err
	}
	l7 := &api.L7{Type: api.L7TypeResponse, HTTP: &api.HTTP{
		Code:     e.code,
		Method:   core.RequestMethod(e.method).String(),
		URL:      url(e),
		Protocol: protocols[alsdata.HTTPAccessLogEntry_HTTPVersion(e.protocol)],
		Headers:  s.headers(e),
	}}
	if !e.hasCode || e.code == 0 {
		l7.Type = api.L7TypeRequest
	} else if d, ok := duration(e.firstUpstreamRx); ok {
		l7.LatencyNs = uint64(d)
	} else if d, ok := duration(e.firstDownstreamTx); ok {
		l7.LatencyNs = uint64(d) // a response of Envoy's own
	}
	f.L7 = l7
	if l7.Type == api.L7TypeResponse {
		// Like Hubble's, a response goes from the server to the client.
		f.IP.Source, f.IP.Destination = f.IP.Destination, f.IP.Source
		f.L4.SourcePort, f.L4.DestinationPort = f.L4.DestinationPort, f.L4.SourcePort
		f.IsReply = true
	}
	return nil
}

// verdict sets the record's verdict: DROPPED (POLICY_DENIED) naming the
// policies when the L7 policy refused the request (the details of Envoy's
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

// headers are the request's and the response's logged headers, sorted by
// name (request first on a tie), sensitive values redacted.
func (s *Source) headers(e *httpEntry) []api.HTTPHeader {
	n := 4 + len(e.requestHeaders) + len(e.responseHeaders)
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
	add("user-agent", e.userAgent)
	add("referer", e.referer)
	add("x-request-id", e.requestID)
	add("x-forwarded-for", e.forwardedFor)
	for _, h := range e.requestHeaders {
		add(headerName(h.key), h.value)
	}
	for _, h := range e.responseHeaders {
		add(headerName(h.key), h.value)
	}
	slices.SortStableFunc(hs, func(a, b api.HTTPHeader) int { return strings.Compare(a.Key, b.Key) })
	return hs
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
