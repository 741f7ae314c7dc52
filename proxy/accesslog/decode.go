package accesslog

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/periscope-dev/periscope/proxy/xds"
)

// Field numbers of what the source reads of a StreamAccessLogsMessage
// (envoy/service/accesslog/v3/als.proto) and its HTTPAccessLogEntry
// (envoy/data/accesslog/v3/accesslog.proto); everything else is skipped.
const (
	fieldHTTPLogs = 2 // StreamAccessLogsMessage.http_logs
	fieldTCPLogs  = 3 // StreamAccessLogsMessage.tcp_logs
	fieldLogEntry = 1 // HTTPAccessLogEntries.log_entry, TCPAccessLogEntries.log_entry

	fieldCommon   = 1 // HTTPAccessLogEntry.common_properties
	fieldProtocol = 2 // HTTPAccessLogEntry.protocol_version
	fieldRequest  = 3 // HTTPAccessLogEntry.request
	fieldResponse = 4 // HTTPAccessLogEntry.response

	fieldDownstreamRemote  = 2  // AccessLogCommon.downstream_remote_address
	fieldDownstreamLocal   = 3  // AccessLogCommon.downstream_local_address
	fieldStartTime         = 5  // AccessLogCommon.start_time
	fieldLastRx            = 6  // AccessLogCommon.time_to_last_rx_byte
	fieldFirstUpstreamTx   = 7  // AccessLogCommon.time_to_first_upstream_tx_byte
	fieldFirstUpstreamRx   = 9  // AccessLogCommon.time_to_first_upstream_rx_byte
	fieldFirstDownstreamTx = 11 // AccessLogCommon.time_to_first_downstream_tx_byte
	fieldLastDownstreamTx  = 12 // AccessLogCommon.time_to_last_downstream_tx_byte
	fieldUpstreamRemote    = 13 // AccessLogCommon.upstream_remote_address
	fieldMetadata          = 17 // AccessLogCommon.metadata
	fieldCustomTags        = 22 // AccessLogCommon.custom_tags

	fieldMethod         = 1  // HTTPRequestProperties.request_method
	fieldScheme         = 2  // HTTPRequestProperties.scheme
	fieldAuthority      = 3  // HTTPRequestProperties.authority
	fieldPath           = 5  // HTTPRequestProperties.path
	fieldUserAgent      = 6  // HTTPRequestProperties.user_agent
	fieldReferer        = 7  // HTTPRequestProperties.referer
	fieldForwardedFor   = 8  // HTTPRequestProperties.forwarded_for
	fieldRequestID      = 9  // HTTPRequestProperties.request_id
	fieldRequestHeaders = 13 // HTTPRequestProperties.request_headers

	fieldResponseCode    = 1 // HTTPResponseProperties.response_code
	fieldResponseHeaders = 4 // HTTPResponseProperties.response_headers
	fieldResponseDetails = 6 // HTTPResponseProperties.response_code_details

	fieldSocketAddress = 1 // config.core.v3.Address.socket_address
	fieldAddress       = 2 // SocketAddress.address
	fieldPortValue     = 3 // SocketAddress.port_value
	fieldSeconds       = 1 // Timestamp.seconds, Duration.seconds
	fieldNanos         = 2 // Timestamp.nanos, Duration.nanos
	fieldValue         = 1 // UInt32Value.value
	fieldMapKey        = 1 // a map entry's key
	fieldMapValue      = 2 // a map entry's value
)

// httpEntry is what the source reads of one HTTPAccessLogEntry: views
// into the message's bytes, valid while they are, reused entry after entry.
type httpEntry struct {
	client, local, upstream []byte // Address messages
	start                   []byte // Timestamp
	lastRx                  []byte // Duration
	firstUpstreamTx         []byte // Duration
	firstUpstreamRx         []byte // Duration
	firstDownstreamTx       []byte // Duration
	lastDownstreamTx        []byte // Duration
	metadata                []byte // config.core.v3.Metadata
	endpoint, direction     []byte // custom tags' values
	protocol                uint64
	method                  uint64
	scheme, authority, path []byte
	userAgent, referer      []byte
	forwardedFor, requestID []byte
	requestHeaders          []header
	responseHeaders         []header
	code                    uint32
	hasCode                 bool
	details                 []byte
}

type header struct{ key, value []byte }

var errMalformed = errors.New("malformed protobuf")

// eachField calls f with each field of the message b: its number, and its
// bytes (length-delimited) or its value (varint); other wire types are
// skipped.
func eachField(b []byte, f func(num protowire.Number, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return errMalformed
		}
		b = b[k:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, k = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, k = protowire.ConsumeVarint(b)
		default:
			k = protowire.ConsumeFieldValue(num, typ, b)
		}
		if k < 0 {
			return errMalformed
		}
		b = b[k:]
		if typ == protowire.BytesType || typ == protowire.VarintType {
			if err := f(num, v, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachEntry calls http with the bytes of each HTTP entry of the
// StreamAccessLogsMessage msg, and returns how many TCP entries it had.
func eachEntry(msg []byte, http func([]byte) error) (tcp int, err error) {
	err = eachField(msg, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case fieldHTTPLogs:
			return eachField(v, func(num protowire.Number, e []byte, _ uint64) error {
				if num != fieldLogEntry {
					return nil
				}
				return http(e)
			})
		case fieldTCPLogs:
			return eachField(v, func(num protowire.Number, _ []byte, _ uint64) error {
				if num == fieldLogEntry {
					tcp++
				}
				return nil
			})
		}
		return nil
	})
	return tcp, err
}

// decode reads the HTTPAccessLogEntry b into e (overwritten whole).
func (e *httpEntry) decode(b []byte) error {
	reqHeaders, respHeaders := e.requestHeaders[:0], e.responseHeaders[:0]
	*e = httpEntry{}
	err := eachField(b, func(num protowire.Number, v []byte, n uint64) error {
		switch num {
		case fieldCommon:
			return e.decodeCommon(v)
		case fieldProtocol:
			e.protocol = n
		case fieldRequest:
			return eachField(v, func(num protowire.Number, v []byte, n uint64) error {
				switch num {
				case fieldMethod:
					e.method = n
				case fieldScheme:
					e.scheme = v
				case fieldAuthority:
					e.authority = v
				case fieldPath:
					e.path = v
				case fieldUserAgent:
					e.userAgent = v
				case fieldReferer:
					e.referer = v
				case fieldForwardedFor:
					e.forwardedFor = v
				case fieldRequestID:
					e.requestID = v
				case fieldRequestHeaders:
					h, err := mapEntry(v)
					reqHeaders = append(reqHeaders, h)
					return err
				}
				return nil
			})
		case fieldResponse:
			return eachField(v, func(num protowire.Number, v []byte, _ uint64) error {
				switch num {
				case fieldResponseCode:
					e.hasCode = true
					return eachField(v, func(num protowire.Number, _ []byte, n uint64) error {
						if num == fieldValue {
							e.code = uint32(n)
						}
						return nil
					})
				case fieldResponseHeaders:
					h, err := mapEntry(v)
					respHeaders = append(respHeaders, h)
					return err
				case fieldResponseDetails:
					e.details = v
				}
				return nil
			})
		}
		return nil
	})
	e.requestHeaders, e.responseHeaders = reqHeaders, respHeaders
	return err
}

func (e *httpEntry) decodeCommon(b []byte) error {
	return eachField(b, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case fieldDownstreamRemote:
			e.client = v
		case fieldDownstreamLocal:
			e.local = v
		case fieldUpstreamRemote:
			e.upstream = v
		case fieldStartTime:
			e.start = v
		case fieldLastRx:
			e.lastRx = v
		case fieldFirstUpstreamTx:
			e.firstUpstreamTx = v
		case fieldFirstUpstreamRx:
			e.firstUpstreamRx = v
		case fieldFirstDownstreamTx:
			e.firstDownstreamTx = v
		case fieldLastDownstreamTx:
			e.lastDownstreamTx = v
		case fieldMetadata:
			e.metadata = v
		case fieldCustomTags:
			h, err := mapEntry(v)
			switch string(h.key) {
			case xds.TagEndpoint:
				e.endpoint = h.value
			case xds.TagDirection:
				e.direction = h.value
			}
			return err
		}
		return nil
	})
}

// mapEntry reads a map<string, string> entry.
func mapEntry(b []byte) (header, error) {
	var h header
	err := eachField(b, func(num protowire.Number, v []byte, _ uint64) error {
		switch num {
		case fieldMapKey:
			h.key = v
		case fieldMapValue:
			h.value = v
		}
		return nil
	})
	return h, err
}

// socketAddress reads an Address that must be a socket address.
func socketAddress(b []byte) (netip.AddrPort, error) {
	if b == nil {
		return netip.AddrPort{}, errors.New("none")
	}
	var ip []byte
	var port uint64
	var isSocket bool
	err := eachField(b, func(num protowire.Number, v []byte, _ uint64) error {
		if num != fieldSocketAddress {
			return nil
		}
		isSocket = true
		return eachField(v, func(num protowire.Number, v []byte, n uint64) error {
			switch num {
			case fieldAddress:
				ip = v
			case fieldPortValue:
				port = n
			}
			return nil
		})
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !isSocket {
		return netip.AddrPort{}, errors.New("not a socket address")
	}
	addr, err := netip.ParseAddr(string(ip))
	if err != nil {
		return netip.AddrPort{}, err
	}
	if port > 0xffff {
		return netip.AddrPort{}, fmt.Errorf("port %d", port)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// secondsNanos reads a Timestamp or a Duration.
func secondsNanos(b []byte) (sec, nanos int64, err error) {
	err = eachField(b, func(num protowire.Number, _ []byte, n uint64) error {
		switch num {
		case fieldSeconds:
			sec = int64(n)
		case fieldNanos:
			nanos = int64(int32(n))
		}
		return nil
	})
	return sec, nanos, err
}

// timestamp reads a Timestamp; the zero time when absent or malformed.
func timestamp(b []byte) time.Time {
	sec, nanos, err := secondsNanos(b)
	if b == nil || err != nil {
		return time.Time{}
	}
	return time.Unix(sec, nanos)
}

// duration reads a Duration; ok is false when absent or malformed.
func duration(b []byte) (d time.Duration, ok bool) {
	sec, nanos, err := secondsNanos(b)
	if b == nil || err != nil {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(nanos), true
}
