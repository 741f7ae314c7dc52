package api

import "strconv"

// textAppender appends a record's own text (a URL, a DNS name) to a
// summary: as it is, or escaped for a JSON string.
type textAppender func(dst []byte, s string) []byte

func appendRaw(dst []byte, s string) []byte { return append(dst, s...) }

// dnsRcodeNames are the DNS response codes' descriptions (IANA's, as
// Hubble's DNS summary prints them).
var dnsRcodeNames = [...]string{
	0: "No Error", 1: "Format Error", 2: "Server Failure", 3: "Non-Existent Domain",
	4: "Not Implemented", 5: "Query Refused", 6: "Name Exists when it should not",
	7: "RR Set Exists when it should not", 8: "RR Set that should exist does not",
	9: "Server Not Authoritative for zone", 10: "Name not contained in zone",
}

// DNSRcodeName describes a DNS response code, e.g. "Non-Existent Domain".
func DNSRcodeName(rcode uint32) string {
	if int(rcode) < len(dnsRcodeNames) {
		return dnsRcodeNames[rcode]
	}
	return "Unknown"
}

// appendL7Summary appends the summary Hubble's L7 parser gives the record:
//
//	HTTP/1.1 GET http://backend:8080/api                      (HTTP request)
//	HTTP/1.1 200 12ms (GET http://backend:8080/api)           (HTTP response)
//	DNS Query example.com. A                                   (DNS request)
//	DNS Answer "93.184.216.34" TTL: 300 (Proxy example.com. A) (DNS response)
//
// Hubble has none for other types (SAMPLE) and no longer one for Kafka;
// Kafka's here is Periscope's: "Kafka request produce topic orders
// correlation id 7", and on a response " error code 3" after it.
func appendL7Summary(dst []byte, l7 *L7, text textAppender) []byte {
	if l7.Type != L7TypeRequest && l7.Type != L7TypeResponse {
		return dst
	}
	switch {
	case l7.HTTP != nil:
		return appendHTTPSummary(dst, l7, text)
	case l7.DNS != nil:
		return appendDNSSummary(dst, l7.Type, l7.DNS, text)
	case l7.Kafka != nil:
		return appendKafkaSummary(dst, l7.Type, l7.Kafka, text)
	}
	return dst
}

func appendHTTPSummary(dst []byte, l7 *L7, text textAppender) []byte {
	h := l7.HTTP
	dst = text(dst, h.Protocol)
	dst = append(dst, ' ')
	if l7.Type == L7TypeRequest {
		dst = text(dst, h.Method)
		dst = append(dst, ' ')
		return text(dst, h.URL)
	}
	dst = strconv.AppendUint(dst, uint64(h.Code), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, l7.LatencyNs/1e6, 10)
	dst = append(dst, "ms ("...)
	dst = text(dst, h.Method)
	dst = append(dst, ' ')
	dst = text(dst, h.URL)
	return append(dst, ')')
}

func appendDNSSummary(dst []byte, typ L7FlowType, d *DNS, text textAppender) []byte {
	if typ == L7TypeRequest {
		dst = append(dst, "DNS Query "...)
		dst = text(dst, d.Query)
		dst = append(dst, ' ')
		return appendJoined(dst, d.Qtypes, text)
	}
	dst = append(dst, "DNS Answer "...)
	switch {
	case d.Rcode != 0:
		dst = append(dst, "RCode: "...)
		dst = append(dst, DNSRcodeName(d.Rcode)...)
	default:
		if len(d.IPs) > 0 {
			dst = text(dst, `"`)
			dst = appendJoined(dst, d.IPs, text)
			dst = text(dst, `"`)
		}
		if len(d.CNAMEs) > 0 {
			if len(d.IPs) > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, "CNAMEs: "...)
			dst = text(dst, `"`)
			dst = appendJoined(dst, d.CNAMEs, text)
			dst = text(dst, `"`)
		}
	}
	dst = append(dst, " TTL: "...)
	dst = strconv.AppendUint(dst, uint64(d.TTL), 10)
	if d.ObservationSource == "proxy" {
		dst = append(dst, " (Proxy "...)
	} else {
		dst = append(dst, " (Query "...)
	}
	dst = text(dst, d.Query)
	dst = append(dst, ' ')
	dst = appendJoined(dst, d.Qtypes, text)
	return append(dst, ')')
}

func appendKafkaSummary(dst []byte, typ L7FlowType, k *Kafka, text textAppender) []byte {
	if typ == L7TypeRequest {
		dst = append(dst, "Kafka request "...)
	} else {
		dst = append(dst, "Kafka response "...)
	}
	dst = text(dst, k.APIKey)
	dst = append(dst, " topic "...)
	dst = text(dst, k.Topic)
	dst = append(dst, " correlation id "...)
	dst = strconv.AppendInt(dst, int64(k.CorrelationID), 10)
	if typ == L7TypeResponse {
		dst = append(dst, " error code "...)
		dst = strconv.AppendInt(dst, int64(k.ErrorCode), 10)
	}
	return dst
}

// appendJoined appends ss separated by commas.
func appendJoined(dst []byte, ss []string, text textAppender) []byte {
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = text(dst, s)
	}
	return dst
}
