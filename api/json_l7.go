package api

import "strconv"

// appendL7 appends the "l7" object as protojson writes Hubble's Layer7 with
// proto field names: the type as its name, latency_ns (a uint64) as a
// string, zero values and empty lists left out, then the record. A record
// that breaks the one-of (two of HTTP, DNS and Kafka set) is written whole,
// DNS, HTTP, Kafka in flow.proto's order.
func appendL7(dst []byte, l7 *L7) []byte {
	dst = appendKey(dst, "l7")
	dst = append(dst, '{')
	if l7.Type != L7TypeUnknown {
		dst = appendEnum(dst, "type", l7.Type.String())
	}
	if l7.LatencyNs != 0 {
		dst = appendKey(dst, "latency_ns")
		dst = append(dst, '"')
		dst = strconv.AppendUint(dst, l7.LatencyNs, 10)
		dst = append(dst, '"')
	}
	if d := l7.DNS; d != nil {
		dst = appendKey(dst, "dns")
		dst = append(dst, '{')
		dst = appendStringField(dst, "query", d.Query)
		dst = appendStringsField(dst, "ips", d.IPs)
		dst = appendUintField(dst, "ttl", uint64(d.TTL))
		dst = appendStringsField(dst, "cnames", d.CNAMEs)
		dst = appendStringField(dst, "observation_source", d.ObservationSource)
		dst = appendUintField(dst, "rcode", uint64(d.Rcode))
		dst = appendStringsField(dst, "qtypes", d.Qtypes)
		dst = appendStringsField(dst, "rrtypes", d.RRtypes)
		dst = append(dst, '}')
	}
	if h := l7.HTTP; h != nil {
		dst = appendKey(dst, "http")
		dst = append(dst, '{')
		dst = appendUintField(dst, "code", uint64(h.Code))
		dst = appendStringField(dst, "method", h.Method)
		dst = appendStringField(dst, "url", h.URL)
		dst = appendStringField(dst, "protocol", h.Protocol)
		if len(h.Headers) > 0 {
			dst = appendKey(dst, "headers")
			dst = append(dst, '[')
			for i := range h.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '{')
				dst = appendStringField(dst, "key", h.Headers[i].Key)
				dst = appendStringField(dst, "value", h.Headers[i].Value)
				dst = append(dst, '}')
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	if k := l7.Kafka; k != nil {
		dst = appendKey(dst, "kafka")
		dst = append(dst, '{')
		dst = appendIntField(dst, "error_code", int64(k.ErrorCode))
		dst = appendIntField(dst, "api_version", int64(k.APIVersion))
		dst = appendStringField(dst, "api_key", k.APIKey)
		dst = appendIntField(dst, "correlation_id", int64(k.CorrelationID))
		dst = appendStringField(dst, "topic", k.Topic)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
