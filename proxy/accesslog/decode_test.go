package accesslog

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/proxy/xds"
)

// TestDecodeReadsWhatProtobufWrote checks the in-place decoder against
// messages protobuf marshalled: each field the record uses, in both
// families and protocols, and what it must tolerate or refuse.
func TestDecodeReadsWhatProtobufWrote(t *testing.T) {
	h2egress := entry(503, "upstream_reset")
	c := h2egress.CommonProperties
	c.DownstreamRemoteAddress = sockAddr("fd00::2", 51000)
	c.DownstreamLocalAddress = sockAddr("fd00::3", 8080)
	c.UpstreamRemoteAddress = nil
	c.TimeToFirstUpstreamRxByte = nil
	c.TimeToFirstDownstreamTxByte = durationpb.New(1500 * time.Microsecond)
	c.CustomTags = map[string]string{xds.TagEndpoint: "4294967295", xds.TagDirection: "egress", "other": "x"}
	h2egress.ProtocolVersion = alsdata.HTTPAccessLogEntry_HTTP2
	h2egress.Request.RequestMethod = core.RequestMethod_PUT
	h2egress.Request.Scheme = "https"
	h2egress.Request.ForwardedFor = "198.18.0.9"
	h2egress.Request.RequestId = "id-1"
	h2egress.Request.Referer = "http://a/"
	h2egress.Request.RequestHeaders["X-Upper"] = "v"

	recs, err := recordsOf(New(Options{}), h2egress)
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d records (%v), want a request and its response", len(recs), err)
	}
	req, f := recs[0], recs[1]
	h := f.L7.HTTP
	if h.Code != 503 || h.Method != "PUT" || h.URL != "https://web/x?y=1" || h.Protocol != "HTTP/2" ||
		f.L7.LatencyNs != uint64(1500*time.Microsecond) || f.L7.Type != api.L7TypeResponse {
		t.Errorf("L7 %+v %+v", f.L7, h)
	}
	if netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort) != netip.MustParseAddrPort("[fd00::3]:8080") ||
		netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort) != netip.MustParseAddrPort("[fd00::2]:51000") ||
		f.IP.Version != api.IPv6 || f.Interface.Index != 4294967295 || f.TrafficDirection != api.TrafficDirectionEgress {
		t.Errorf("record %+v %+v at %d %v", f.IP, f.L4, f.Interface.Index, f.TrafficDirection)
	}
	if !f.StartTime.Equal(time.Unix(1700000000, 0)) || !f.Time.Equal(f.StartTime.Add(4*time.Millisecond)) || !req.Time.Equal(f.StartTime) {
		t.Errorf("start %v time %v, request at %v", f.StartTime, f.Time, req.Time)
	}
	want := []api.HTTPHeader{{Key: "authorization", Value: Redacted},
		{Key: "cookie", Value: Redacted}, {Key: "referer", Value: "http://a/"},
		{Key: "user-agent", Value: "curl/8"}, {Key: "x-forwarded-for", Value: "198.18.0.9"},
		{Key: "x-request-id", Value: "id-1"}, {Key: "x-upper", Value: "v"}}
	if !slices.Equal(req.L7.HTTP.Headers, want) {
		t.Errorf("request headers %v, want %v", req.L7.HTTP.Headers, want)
	}
	want = []api.HTTPHeader{{Key: "content-type", Value: "text/plain"}, {Key: "set-cookie", Value: Redacted}}
	if !slices.Equal(h.Headers, want) {
		t.Errorf("response headers %v, want %v", h.Headers, want)
	}

	// Two HTTP entries and a TCP one: two records, one skipped.
	b, err := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_TcpLogs{
		TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: []*alsdata.TCPAccessLogEntry{{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if tcp, err := eachEntry(b, func([]byte) error { t.Error("a TCP entry read as HTTP"); return nil }); tcp != 1 || err != nil {
		t.Errorf("TCP entries %d (%v), want 1", tcp, err)
	}

	// Fields it does not know are skipped, whatever their wire type.
	known, err := proto.Marshal(entry(200, "via_upstream"))
	if err != nil {
		t.Fatal(err)
	}
	extra := protowire.AppendTag(nil, 900, protowire.Fixed64Type)
	extra = protowire.AppendFixed64(extra, 7)
	extra = protowire.AppendTag(extra, 901, protowire.Fixed32Type)
	extra = protowire.AppendFixed32(extra, 7)
	var e httpEntry
	if err := e.decode(append(extra, known...)); err != nil || e.code != 200 || string(e.path) != "/x?y=1" {
		t.Errorf("with unknown fields: %v, code %d path %q", err, e.code, e.path)
	}
	// A truncated entry is refused, not read past its end.
	if err := e.decode(known[:len(known)-3]); err == nil {
		t.Error("a truncated entry decoded")
	}
	// An entry reuses the header slices of the one before.
	if err := e.decode(known); err != nil || len(e.requestHeaders) != 2 || len(e.responseHeaders) != 2 {
		t.Errorf("headers %d/%d (%v), want 2/2", len(e.requestHeaders), len(e.responseHeaders), err)
	}
}

// BenchmarkDecodeRecord is the cost of one entry's records (its request
// and its response), decoded in place.
func BenchmarkDecodeRecord(b *testing.B) {
	s := New(Options{})
	raw, err := proto.Marshal(entry(200, "via_upstream"))
	if err != nil {
		b.Fatal(err)
	}
	var e httpEntry
	var f api.Flow
	b.ReportAllocs()
	for b.Loop() {
		if err := e.decode(raw); err != nil {
			b.Fatal(err)
		}
		x, err := exchangeOf(&e)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.request(&x, &e, &f); err != nil {
			b.Fatal(err)
		}
		s.response(&x, &e, &f)
	}
}

// FuzzDecode feeds the decoder arbitrary messages: it may refuse them, it
// must not panic or read past them.
func FuzzDecode(f *testing.F) {
	for _, e := range []*alsdata.HTTPAccessLogEntry{entry(200, "via_upstream"), entry(0, ""), audited("p")} {
		b, err := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*alsdata.HTTPAccessLogEntry{e}}}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := New(Options{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		var e httpEntry
		var fl api.Flow
		_, _ = eachEntry(msg, func(b []byte) error {
			if err := e.decode(b); err != nil {
				return err
			}
			if x, err := exchangeOf(&e); err == nil {
				_ = s.request(&x, &e, &fl)
				s.response(&x, &e, &fl)
			}
			return nil
		})
	})
}
