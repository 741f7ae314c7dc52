package sink

import (
	"encoding/binary"

	"github.com/periscope-dev/periscope/api"
)

// The journal's encoding of a flow's L7 record (api.L7), in the manner of
// flowcodec.go: a presence byte for the record and for each protocol's
// part, fixed-size fields little-endian, strings and lists as appendString
// and appendStrings write them. It allocates nothing, so that an L7 record
// costs Offer no more than an L3/L4 one.

func appendL7(dst []byte, l *api.L7) []byte {
	if l == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1, byte(l.Type))
	dst = binary.LittleEndian.AppendUint64(dst, l.LatencyNs)
	if h := l.HTTP; h == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.LittleEndian.AppendUint32(dst, h.Code)
		dst = appendString(dst, h.Method)
		dst = appendString(dst, h.URL)
		dst = appendString(dst, h.Protocol)
		dst = appendHeaders(dst, h.Headers)
	}
	if d := l.DNS; d == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = appendString(dst, d.Query)
		dst = appendStrings(dst, d.IPs)
		dst = binary.LittleEndian.AppendUint32(dst, d.TTL)
		dst = appendStrings(dst, d.CNAMEs)
		dst = appendString(dst, d.ObservationSource)
		dst = binary.LittleEndian.AppendUint32(dst, d.Rcode)
		dst = appendStrings(dst, d.Qtypes)
		dst = appendStrings(dst, d.RRtypes)
	}
	if k := l.Kafka; k == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.ErrorCode))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.APIVersion))
		dst = appendString(dst, k.APIKey)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.CorrelationID))
		dst = appendString(dst, k.Topic)
	}
	return appendString(dst, l.TraceID) // since version 3
}

// appendHeaders writes HTTP headers as appendStrings writes a list, each
// as its key and value.
func appendHeaders(dst []byte, hs []api.HTTPHeader) []byte {
	if hs == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(hs))+1)
	for i := range hs {
		dst = appendString(dst, hs[i].Key)
		dst = appendString(dst, hs[i].Value)
	}
	return dst
}

// l7 reads what appendL7 wrote in a flow of encoding version v.
func (r *flowReader) l7(v byte) *api.L7 {
	if r.byte() != 1 || r.err != nil {
		return nil
	}
	l := &api.L7{Type: api.L7FlowType(r.byte()), LatencyNs: r.u64()}
	if r.byte() == 1 {
		l.HTTP = &api.HTTP{Code: r.u32(), Method: r.string(), URL: r.string(), Protocol: r.string(), Headers: r.headers()}
	}
	if r.byte() == 1 {
		l.DNS = &api.DNS{Query: r.string(), IPs: r.strings(), TTL: r.u32(), CNAMEs: r.strings(),
			ObservationSource: r.string(), Rcode: r.u32(), Qtypes: r.strings(), RRtypes: r.strings()}
	}
	if r.byte() == 1 {
		l.Kafka = &api.Kafka{ErrorCode: int32(r.u32()), APIVersion: int32(r.u32()), APIKey: r.string(),
			CorrelationID: int32(r.u32()), Topic: r.string()}
	}
	if v >= 3 {
		l.TraceID = r.string()
	}
	return l
}

func (r *flowReader) headers() []api.HTTPHeader {
	n := r.uvarint()
	if n == 0 || r.err != nil {
		return nil
	}
	hs := make([]api.HTTPHeader, 0, min(n-1, uint64(len(r.b))))
	for range n - 1 {
		hs = append(hs, api.HTTPHeader{Key: r.string(), Value: r.string()})
		if r.err != nil {
			return nil
		}
	}
	return hs
}
