package clickhouse

import (
	"github.com/periscope-dev/periscope/api"
)

// l7Row scans a row's L7 columns (those l7Builders write) and rebuilds the
// record.
type l7Row struct {
	protocol, method, url, dnsQuery string
	status                          uint16
	latency                         uint64
	typ                             uint8
	httpProtocol                    string
	headerKeys, headerValues        []string
	ips                             []string
	ttl                             uint32
	cnames                          []string
	observationSource               string
	rcode                           uint32
	qtypes, rrtypes                 []string
	kafkaErrorCode, kafkaAPIVersion int32
	kafkaAPIKey                     string
	kafkaCorrelationID              int32
	kafkaTopic                      string
}

// ptrs are the scan targets, in flowColumns order.
func (r *l7Row) ptrs() []any {
	return []any{
		&r.protocol, &r.method, &r.url, &r.status, &r.latency, &r.dnsQuery,
		&r.typ, &r.httpProtocol, &r.headerKeys, &r.headerValues,
		&r.ips, &r.ttl, &r.cnames, &r.observationSource, &r.rcode, &r.qtypes, &r.rrtypes,
		&r.kafkaErrorCode, &r.kafkaAPIVersion, &r.kafkaAPIKey, &r.kafkaCorrelationID, &r.kafkaTopic,
	}
}

// record is the row's L7 record: nil for a row without one (no protocol and
// no type; an all-zero record reads back as none), else a new record whose
// slices are its own. l7_protocol says which of HTTP, DNS and Kafka it holds.
func (r *l7Row) record() *api.L7 {
	if r.protocol == "" && r.typ == 0 {
		return nil
	}
	l7 := &api.L7{Type: api.L7FlowType(r.typ), LatencyNs: r.latency}
	switch r.protocol {
	case "http":
		l7.HTTP = &api.HTTP{Code: uint32(r.status), Method: r.method, URL: r.url, Protocol: r.httpProtocol}
		for i, k := range r.headerKeys {
			h := api.HTTPHeader{Key: k}
			if i < len(r.headerValues) {
				h.Value = r.headerValues[i]
			}
			l7.HTTP.Headers = append(l7.HTTP.Headers, h)
		}
	case "dns":
		l7.DNS = &api.DNS{Query: r.dnsQuery, IPs: nilIfEmpty(r.ips), TTL: r.ttl, CNAMEs: nilIfEmpty(r.cnames),
			ObservationSource: r.observationSource, Rcode: r.rcode, Qtypes: nilIfEmpty(r.qtypes), RRtypes: nilIfEmpty(r.rrtypes)}
	case "kafka":
		l7.Kafka = &api.Kafka{ErrorCode: r.kafkaErrorCode, APIVersion: r.kafkaAPIVersion, APIKey: r.kafkaAPIKey,
			CorrelationID: r.kafkaCorrelationID, Topic: r.kafkaTopic}
	}
	return l7
}
