package api

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// The wire form of Hubble's Layer7, as appendL7 writes it.
type (
	wireL7 struct {
		Type      wireEnum   `json:"type"`
		LatencyNs wireUint64 `json:"latency_ns"`
		DNS       *wireDNS   `json:"dns"`
		HTTP      *wireHTTP  `json:"http"`
		Kafka     *wireKafka `json:"kafka"`
	}
	wireDNS struct {
		Query             string   `json:"query"`
		IPs               []string `json:"ips"`
		TTL               uint32   `json:"ttl"`
		CNAMEs            []string `json:"cnames"`
		ObservationSource string   `json:"observation_source"`
		Rcode             uint32   `json:"rcode"`
		Qtypes            []string `json:"qtypes"`
		RRtypes           []string `json:"rrtypes"`
	}
	wireHTTP struct {
		Code     uint32       `json:"code"`
		Method   string       `json:"method"`
		URL      string       `json:"url"`
		Protocol string       `json:"protocol"`
		Headers  []HTTPHeader `json:"headers"` // "key", "value": matched to Key, Value
	}
	wireKafka struct {
		ErrorCode     int32  `json:"error_code"`
		APIVersion    int32  `json:"api_version"`
		APIKey        string `json:"api_key"`
		CorrelationID int32  `json:"correlation_id"`
		Topic         string `json:"topic"`
	}
)

// wireUint64 is a uint64 as protojson writes it, a decimal string; a JSON
// number is accepted too, as protojson does.
type wireUint64 uint64

// UnmarshalJSON accepts "123" and 123.
func (u *wireUint64) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an unsigned 64-bit number", b)
	}
	*u = wireUint64(n)
	return nil
}

// decode builds the L7 record; every slice is the decoder's own.
func (w *wireL7) decode() (*L7, error) {
	l7 := &L7{LatencyNs: uint64(w.LatencyNs)}
	if err := parseEnumField(w.Type, "l7.type", ParseL7FlowType, &l7.Type); err != nil {
		return nil, err
	}
	if d := w.DNS; d != nil {
		l7.DNS = &DNS{Query: d.Query, IPs: d.IPs, TTL: d.TTL, CNAMEs: d.CNAMEs,
			ObservationSource: d.ObservationSource, Rcode: d.Rcode, Qtypes: d.Qtypes, RRtypes: d.RRtypes}
	}
	if h := w.HTTP; h != nil {
		l7.HTTP = &HTTP{Code: h.Code, Method: h.Method, URL: h.URL, Protocol: h.Protocol, Headers: h.Headers}
	}
	if k := w.Kafka; k != nil {
		l7.Kafka = &Kafka{ErrorCode: k.ErrorCode, APIVersion: k.APIVersion, APIKey: k.APIKey,
			CorrelationID: k.CorrelationID, Topic: k.Topic}
	}
	return l7, nil
}
