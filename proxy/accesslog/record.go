package accesslog

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"

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
func (s *Source) record(e *alsdata.HTTPAccessLogEntry, f *api.Flow) error {
	c := e.GetCommonProperties()
	client, err := addrPort(c.GetDownstreamRemoteAddress())
	if err != nil {
		return fmt.Errorf("downstream remote address: %w", err)
	}
	server, err := addrPort(c.GetUpstreamRemoteAddress())
	if err != nil {
		// No upstream (refused or failed before): the original destination.
		if server, err = addrPort(c.GetDownstreamLocalAddress()); err != nil {
			return fmt.Errorf("downstream local address: %w", err)
		}
	}
	*f = api.Flow{}
	start := c.GetStartTime().AsTime()
	f.StartTime = start
	f.Time = start.Add(c.GetTimeToLastDownstreamTxByte().AsDuration())
	if f.Time.Before(start) || c.GetTimeToLastDownstreamTxByte() == nil {
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
	tags := c.GetCustomTags()
	if ep, err := strconv.ParseUint(tags[xds.TagEndpoint], 10, 32); err == nil {
		f.Interface.Index = uint32(ep)
	}
	switch tags[xds.TagDirection] {
	case "ingress":
		f.TrafficDirection = api.TrafficDirectionIngress
	case "egress":
		f.TrafficDirection = api.TrafficDirectionEgress
	}
	req, resp := e.GetRequest(), e.GetResponse()
	code := resp.GetResponseCode().GetValue()
	verdict(f, code, resp.GetResponseCodeDetails(), c.GetMetadata())
	l7 := &api.L7{Type: api.L7TypeResponse, HTTP: &api.HTTP{
		Code:     code,
		Method:   req.GetRequestMethod().String(),
		URL:      url(req),
		Protocol: protocols[e.GetProtocolVersion()],
		Headers:  s.headers(req, resp),
	}}
	if code == 0 {
		l7.Type = api.L7TypeRequest
	} else if d := c.GetTimeToFirstUpstreamRxByte(); d != nil {
		l7.LatencyNs = uint64(d.AsDuration())
	} else if d := c.GetTimeToFirstDownstreamTxByte(); d != nil {
		l7.LatencyNs = uint64(d.AsDuration()) // a response of Envoy's own
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
func verdict(f *api.Flow, code uint32, details string, md *core.Metadata) {
	f.Verdict = api.VerdictForwarded
	var denied []api.PolicyRef
	switch {
	case code == 403 && strings.HasPrefix(details, xds.RBACDeniedDetail):
		f.Verdict, f.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
		denied = xds.PolicyRefs(strings.TrimSuffix(strings.TrimPrefix(details, xds.RBACDeniedDetail), "]"))
	default:
		rbac := md.GetFilterMetadata()[xds.RBACFilter].GetFields()
		if rbac[xds.ShadowResultKey].GetStringValue() != xds.ShadowDenied {
			return
		}
		f.Verdict, f.DropReason = api.VerdictAudit, api.DropReasonPolicyDenied
		denied = xds.PolicyRefs(rbac[xds.ShadowPolicyKey].GetStringValue())
	}
	if f.TrafficDirection == api.TrafficDirectionEgress {
		f.EgressDeniedBy = denied
	} else {
		f.IngressDeniedBy = denied
	}
}

// url is the request's absolute URL, as Hubble shows it.
func url(r *alsdata.HTTPRequestProperties) string {
	scheme := r.GetScheme()
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + r.GetAuthority() + r.GetPath()
}

// headers are the request's and the response's logged headers, sorted by
// name (request first on a tie), sensitive values redacted.
func (s *Source) headers(req *alsdata.HTTPRequestProperties, resp *alsdata.HTTPResponseProperties) []api.HTTPHeader {
	var hs []api.HTTPHeader
	add := func(k, v string) {
		if v == "" {
			return
		}
		k = strings.ToLower(k)
		if s.redact[k] {
			v = Redacted
		}
		hs = append(hs, api.HTTPHeader{Key: k, Value: v})
	}
	add("user-agent", req.GetUserAgent())
	add("referer", req.GetReferer())
	add("x-request-id", req.GetRequestId())
	add("x-forwarded-for", req.GetForwardedFor())
	for k, v := range req.GetRequestHeaders() {
		add(k, v)
	}
	for k, v := range resp.GetResponseHeaders() {
		add(k, v)
	}
	slices.SortStableFunc(hs, func(a, b api.HTTPHeader) int { return strings.Compare(a.Key, b.Key) })
	return hs
}

// addrPort reads a socket address.
func addrPort(a *core.Address) (netip.AddrPort, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, errors.New("not a socket address")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ip, uint16(sa.GetPortValue())), nil
}
