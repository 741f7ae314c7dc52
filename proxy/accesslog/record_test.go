package accesslog

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/proxy/xds"
)

func sockAddr(ip string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: ip, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
}

// entry is a GET of /x from 198.18.0.2:40000 to 198.18.0.3:80 answered
// with code and details, logged by the ingress redirect of endpoint 7.
func entry(code uint32, details string) *alsdata.HTTPAccessLogEntry {
	e := &alsdata.HTTPAccessLogEntry{
		CommonProperties: &alsdata.AccessLogCommon{
			DownstreamRemoteAddress:    sockAddr("198.18.0.2", 40000),
			DownstreamLocalAddress:     sockAddr("198.18.0.3", 80),
			UpstreamRemoteAddress:      sockAddr("198.18.0.3", 80),
			StartTime:                  timestamppb.New(time.Unix(1700000000, 0)),
			TimeToFirstUpstreamRxByte:  durationpb.New(3 * time.Millisecond),
			TimeToLastDownstreamTxByte: durationpb.New(4 * time.Millisecond),
			CustomTags:                 map[string]string{xds.TagEndpoint: "7", xds.TagDirection: "ingress"},
		},
		ProtocolVersion: alsdata.HTTPAccessLogEntry_HTTP11,
		Request: &alsdata.HTTPRequestProperties{RequestMethod: core.RequestMethod_GET, Authority: "web", Path: "/x?y=1",
			UserAgent: "curl/8", RequestHeaders: map[string]string{"authorization": "Bearer s", "cookie": "c=1"}},
		Response: &alsdata.HTTPResponseProperties{ResponseCodeDetails: details,
			ResponseHeaders: map[string]string{"set-cookie": "s=1", "content-type": "text/plain"}},
	}
	if code != 0 {
		e.Response.ResponseCode = wrapperspb.UInt32(code)
	}
	return e
}

// audited is an entry the audit (shadow) RBAC engine would have denied.
func audited(name string) *alsdata.HTTPAccessLogEntry {
	e := entry(200, "via_upstream")
	e.CommonProperties.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		xds.RBACFilter: {Fields: map[string]*structpb.Value{
			xds.ShadowResultKey: structpb.NewStringValue(xds.ShadowDenied),
			xds.ShadowPolicyKey: structpb.NewStringValue(name),
		}}}}
	return e
}

// Policies the records name.
var (
	shopWeb  = api.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "web", Revision: 7}
	lockdown = api.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: "lockdown", Revision: 3}
)

func TestRecordsOfAnEntry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keep     []string
		e        *alsdata.HTTPAccessLogEntry
		verdict  api.Verdict // the request's
		response bool
		auth     string
		latency  uint64
		deniedBy []api.PolicyRef
	}{
		{"an answered request is a REQUEST and a RESPONSE with its latency", nil, entry(200, "via_upstream"),
			api.VerdictForwarded, true, Redacted, uint64(3 * time.Millisecond), nil},
		{"a request without response is a REQUEST alone", nil, entry(0, "downstream_remote_disconnect"),
			api.VerdictForwarded, false, Redacted, 0, nil},
		{"a request Envoy's RBAC refused is a DROPPED REQUEST, its 403 FORWARDED", nil, entry(403, "rbac_access_denied_matched_policy[none]"),
			api.VerdictDropped, true, Redacted, uint64(3 * time.Millisecond), nil},
		{"a request the L7 policy refused names its policies", nil, entry(403, "rbac_access_denied_matched_policy["+xds.PolicyName([]api.PolicyRef{shopWeb, lockdown}, 2)+"]"),
			api.VerdictDropped, true, Redacted, uint64(3 * time.Millisecond), []api.PolicyRef{shopWeb, lockdown}},
		{"what the audit engine would deny is an AUDIT REQUEST", nil, audited(xds.PolicyName([]api.PolicyRef{shopWeb}, 0)),
			api.VerdictAudit, true, Redacted, uint64(3 * time.Millisecond), []api.PolicyRef{shopWeb}},
		{"a 403 of the server is FORWARDED", nil, entry(403, "via_upstream"),
			api.VerdictForwarded, true, Redacted, uint64(3 * time.Millisecond), nil},
		{"a kept header is not redacted", []string{"Authorization"}, entry(200, "via_upstream"),
			api.VerdictForwarded, true, "Bearer s", uint64(3 * time.Millisecond), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{KeepHeaders: tc.keep})
			recs, err := recordsOf(s, tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 1, true: 2}[tc.response]; len(recs) != want {
				t.Fatalf("%d records, want %d", len(recs), want)
			}
			client, server := netip.MustParseAddrPort("198.18.0.2:40000"), netip.MustParseAddrPort("198.18.0.3:80")
			for i, f := range recs {
				h := f.L7.HTTP
				typ, verdict, latency, deniedBy, src, dst := api.L7TypeRequest, tc.verdict, uint64(0), tc.deniedBy, client, server
				if i == 1 { // as Hubble's: from the server back to the client
					typ, verdict, latency, deniedBy, src, dst = api.L7TypeResponse, api.VerdictForwarded, tc.latency, nil, server, client
				}
				if f.Type != api.FlowTypeL7 || f.L7.Type != typ || f.Verdict != verdict || f.L7.LatencyNs != latency {
					t.Errorf("record %d: type %v L7 %v verdict %v latency %d, want L7 %v %v %d", i, f.Type, f.L7.Type, f.Verdict,
						f.L7.LatencyNs, typ, verdict, latency)
				}
				if h.Method != "GET" || h.URL != "http://web/x?y=1" || h.Protocol != "HTTP/1.1" || (i == 1) != (h.Code != 0) {
					t.Errorf("record %d: HTTP %+v", i, h)
				}
				if netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort) != src || netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort) != dst ||
					f.IsReply != (i == 1) || f.Interface.Index != 7 || f.TrafficDirection != api.TrafficDirectionIngress {
					t.Errorf("record %d: %v -> %v reply %v at %d %v, want %v -> %v", i, netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort),
						netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort), f.IsReply, f.Interface.Index, f.TrafficDirection, src, dst)
				}
				if !slices.Equal(f.IngressDeniedBy, deniedBy) || f.EgressDeniedBy != nil ||
					(verdict == api.VerdictForwarded) != (f.DropReason == api.DropReasonUnknown) {
					t.Errorf("record %d: denied by %v / %v reason %v, want ingress %v", i, f.IngressDeniedBy, f.EgressDeniedBy, f.DropReason, deniedBy)
				}
				got := map[string]string{}
				for _, hd := range h.Headers {
					got[hd.Key] = hd.Value
				}
				if i == 0 && (got["authorization"] != tc.auth || got["cookie"] != Redacted || got["user-agent"] != "curl/8" || len(got) != 3) ||
					i == 1 && (got["set-cookie"] != Redacted || got["content-type"] != "text/plain" || len(got) != 2) {
					t.Errorf("record %d: headers %v", i, got)
				}
			}
			if tc.response && (recs[1].Time.Sub(recs[0].Time) != 4*time.Millisecond || recs[0].UUID == recs[1].UUID) {
				t.Errorf("request at %v, response at %v (%x, %x): want the response at the entry's last byte, each its own UUID",
					recs[0].Time, recs[1].Time, recs[0].UUID, recs[1].UUID)
			}
		})
	}
	bad := entry(200, "")
	bad.CommonProperties.DownstreamRemoteAddress = nil
	if _, err := recordsOf(New(Options{}), bad); err == nil {
		t.Error("an entry without client address made a record")
	}
}

func TestRecordsCarryTheRequestsTraceID(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"a traceparent header", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01"}, id},
		{"logged in another case", map[string]string{"Traceparent": "00-" + id + "-00f067aa0ba902b7-01"}, id},
		{"a malformed one", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7"}, ""},
		{"none", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := entry(200, "via_upstream")
			e.Request.RequestHeaders = tc.header
			recs, err := recordsOf(New(Options{}), e)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2", len(recs))
			}
			for i, f := range recs {
				if f.L7.TraceID != tc.want {
					t.Errorf("record %d (%v): trace ID %q, want %q", i, f.L7.Type, f.L7.TraceID, tc.want)
				}
			}
		})
	}
}

// recordsOf are the records Run makes of e, sent alone in a message.
func recordsOf(s *Source, e *alsdata.HTTPAccessLogEntry) ([]api.Flow, error) {
	b, err := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*alsdata.HTTPAccessLogEntry{e}}}})
	if err != nil {
		return nil, err
	}
	var d httpEntry
	var out []api.Flow
	n := 0
	_, err = eachEntry(b, func(b []byte) error {
		n++
		if err := d.decode(b); err != nil {
			return err
		}
		x, err := exchangeOf(&d)
		if err != nil {
			return err
		}
		var f api.Flow
		if err := s.request(&x, &d, &f); err != nil {
			return err
		}
		out = append(out, f)
		if s.response(&x, &d, &f) {
			out = append(out, f)
		}
		return nil
	})
	if err == nil && n != 1 {
		err = fmt.Errorf("%d entries decoded, want 1", n)
	}
	return out, err
}

// BenchmarkIngest streams access-log entries over gRPC (a Unix socket, as
// Envoy does) into the source and counts the records Run emits; it
// reports entries per second and per CPU-second of the whole process.
func BenchmarkIngest(b *testing.B) {
	s := New(Options{})
	sock := filepath.Join(b.TempDir(), "als.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(ServerCodec())
	s.Register(g)
	go func() { _ = g.Serve(ln) }()
	defer g.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var emitted atomic.Int64
	go func() { _ = s.Run(ctx, func(*api.Flow) { emitted.Add(1) }) }()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// The client sends bytes marshalled once: the CPU measured is the
	// source's (gRPC receive, decode, records), not the sender's.
	stream, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 100 // Envoy flushes what it buffered: batches of entries
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}}}
	for range batch {
		msg.GetHttpLogs().LogEntry = append(msg.GetHttpLogs().LogEntry, entry(200, "via_upstream"))
	}
	raw, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		if err := stream.SendMsg(sentMessage(raw)); err != nil {
			b.Fatal(err)
		}
		sent += batch
	}
	for emitted.Load() < int64(sent) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(float64(sent)/cpu.Seconds(), "entries/cpu-s")
}

// sentMessage is a message already marshalled; rawCodec sends it as is.
type sentMessage []byte

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(sentMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(r)}, nil
	}
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
