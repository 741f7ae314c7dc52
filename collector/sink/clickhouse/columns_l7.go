package clickhouse

import (
	"math"

	"github.com/periscope-dev/periscope/api"
)

// l7Builders build the L7 columns, in flowColumns order: those migration 1
// reserved, then l7Columns. A flow without an L7 record has zero values.
var l7Builders = []buildFunc{
	scalar(strs, func(f *api.Flow) string { return f.L7.Protocol() }), // the record it carries
	scalar(strs, func(f *api.Flow) string { return httpOf(f).Method }),
	scalar(strs, func(f *api.Flow) string { return httpOf(f).URL }),
	scalar(u16s, func(f *api.Flow) uint16 { return uint16(min(httpOf(f).Code, math.MaxUint16)) }),
	scalar(u64s, func(f *api.Flow) uint64 { return l7Of(f).LatencyNs }),
	scalar(strs, func(f *api.Flow) string { return dnsOf(f).Query }),
	// l7Columns.
	scalar(u8s, func(f *api.Flow) uint8 { return uint8(l7Of(f).Type) }),
	scalar(strs, func(f *api.Flow) string { return httpOf(f).Protocol }),
	arrayOf(func(dst []string, f *api.Flow) []string {
		for _, h := range httpOf(f).Headers {
			dst = append(dst, h.Key)
		}
		return dst
	}),
	arrayOf(func(dst []string, f *api.Flow) []string {
		for _, h := range httpOf(f).Headers {
			dst = append(dst, h.Value)
		}
		return dst
	}),
	arrayOf(func(dst []string, f *api.Flow) []string { return append(dst, dnsOf(f).IPs...) }),
	scalar(u32s, func(f *api.Flow) uint32 { return dnsOf(f).TTL }),
	arrayOf(func(dst []string, f *api.Flow) []string { return append(dst, dnsOf(f).CNAMEs...) }),
	scalar(strs, func(f *api.Flow) string { return dnsOf(f).ObservationSource }),
	scalar(u32s, func(f *api.Flow) uint32 { return dnsOf(f).Rcode }),
	arrayOf(func(dst []string, f *api.Flow) []string { return append(dst, dnsOf(f).Qtypes...) }),
	arrayOf(func(dst []string, f *api.Flow) []string { return append(dst, dnsOf(f).RRtypes...) }),
	scalar(i32s, func(f *api.Flow) int32 { return kafkaOf(f).ErrorCode }),
	scalar(i32s, func(f *api.Flow) int32 { return kafkaOf(f).APIVersion }),
	scalar(strs, func(f *api.Flow) string { return kafkaOf(f).APIKey }),
	scalar(i32s, func(f *api.Flow) int32 { return kafkaOf(f).CorrelationID }),
	scalar(strs, func(f *api.Flow) string { return kafkaOf(f).Topic }),
}

// The zero records a flow without one reads as.
var (
	noL7    api.L7
	noHTTP  api.HTTP
	noDNS   api.DNS
	noKafka api.Kafka
)

func l7Of(f *api.Flow) *api.L7 {
	if f.L7 == nil {
		return &noL7
	}
	return f.L7
}

func httpOf(f *api.Flow) *api.HTTP {
	if f.L7 == nil || f.L7.HTTP == nil {
		return &noHTTP
	}
	return f.L7.HTTP
}

func dnsOf(f *api.Flow) *api.DNS {
	if f.L7 == nil || f.L7.DNS == nil {
		return &noDNS
	}
	return f.L7.DNS
}

func kafkaOf(f *api.Flow) *api.Kafka {
	if f.L7 == nil || f.L7.Kafka == nil {
		return &noKafka
	}
	return f.L7.Kafka
}
