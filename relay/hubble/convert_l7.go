package hubble

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/periscope-dev/periscope/api"
)

// l7ToProto is Hubble's Layer7 for an L7 record, nil for none. Layer7 holds
// one record: of a record that breaks the one-of, the first in flow.proto's
// order (DNS, HTTP, Kafka) is carried.
func l7ToProto(l7 *api.L7) *flowpb.Layer7 {
	if l7 == nil {
		return nil
	}
	pl := &flowpb.Layer7{Type: flowpb.L7FlowType(l7.Type), LatencyNs: l7.LatencyNs}
	switch {
	case l7.DNS != nil:
		d := l7.DNS
		pl.Record = &flowpb.Layer7_Dns{Dns: &flowpb.DNS{
			Query: d.Query, Ips: slices.Clone(d.IPs), Ttl: d.TTL, Cnames: slices.Clone(d.CNAMEs),
			ObservationSource: d.ObservationSource, Rcode: d.Rcode,
			Qtypes: slices.Clone(d.Qtypes), Rrtypes: slices.Clone(d.RRtypes),
		}}
	case l7.HTTP != nil:
		h := l7.HTTP
		ph := &flowpb.HTTP{Code: h.Code, Method: h.Method, Url: h.URL, Protocol: h.Protocol}
		for _, hd := range h.Headers {
			ph.Headers = append(ph.Headers, &flowpb.HTTPHeader{Key: hd.Key, Value: hd.Value})
		}
		pl.Record = &flowpb.Layer7_Http{Http: ph}
	case l7.Kafka != nil:
		k := l7.Kafka
		pl.Record = &flowpb.Layer7_Kafka{Kafka: &flowpb.Kafka{
			ErrorCode: k.ErrorCode, ApiVersion: k.APIVersion, ApiKey: k.APIKey, CorrelationId: k.CorrelationID, Topic: k.Topic,
		}}
	}
	return pl
}

// l7FromProto is the L7 record of Hubble's Layer7, nil for none. Hubble's
// L7 flow types fit api.L7FlowType; a larger number becomes unknown.
func l7FromProto(pl *flowpb.Layer7) *api.L7 {
	if pl == nil {
		return nil
	}
	l7 := &api.L7{LatencyNs: pl.GetLatencyNs()}
	if t := pl.GetType(); t >= 0 && t <= 255 {
		l7.Type = api.L7FlowType(t)
	}
	if d := pl.GetDns(); d != nil {
		l7.DNS = &api.DNS{
			Query: d.GetQuery(), IPs: nilIfEmpty(d.GetIps()), TTL: d.GetTtl(), CNAMEs: nilIfEmpty(d.GetCnames()),
			ObservationSource: d.GetObservationSource(), Rcode: d.GetRcode(),
			Qtypes: nilIfEmpty(d.GetQtypes()), RRtypes: nilIfEmpty(d.GetRrtypes()),
		}
	}
	if h := pl.GetHttp(); h != nil {
		l7.HTTP = &api.HTTP{Code: h.GetCode(), Method: h.GetMethod(), URL: h.GetUrl(), Protocol: h.GetProtocol()}
		for _, hd := range h.GetHeaders() {
			l7.HTTP.Headers = append(l7.HTTP.Headers, api.HTTPHeader{Key: hd.GetKey(), Value: hd.GetValue()})
		}
	}
	if k := pl.GetKafka(); k != nil {
		l7.Kafka = &api.Kafka{ErrorCode: k.GetErrorCode(), APIVersion: k.GetApiVersion(), APIKey: k.GetApiKey(),
			CorrelationID: k.GetCorrelationId(), Topic: k.GetTopic()}
	}
	return l7
}

// nilIfEmpty copies s, or is nil when s is empty (as api's records keep
// empty lists).
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
