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

func TestRecordOfAnEntry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keep     []string
		e        *alsdata.HTTPAccessLogEntry
		typ      api.L7FlowType
		verdict  api.Verdict
		auth     string
		latency  uint64
		deniedBy []api.PolicyRef
	}{
		{"an answered request is a RESPONSE with its latency", nil, entry(200, "via_upstream"),
			api.L7TypeResponse, api.VerdictForwarded, Redacted, uint64(3 * time.Millisecond), nil},
		{"a request without response is a REQUEST", nil, entry(0, "downstream_remote_disconnect"),
			api.L7TypeRequest, api.VerdictForwarded, Redacted, 0, nil},
		{"a 403 of Envoy's RBAC is DROPPED", nil, entry(403, "rbac_access_denied_matched_policy[none]"),
			api.L7TypeResponse, api.VerdictDropped, Redacted, uint64(3 * time.Millisecond), nil},
		{"a 403 of the L7 policy names its policies", nil, entry(403, "rbac_access_denied_matched_policy["+xds.PolicyName([]api.PolicyRef{shopWeb, lockdown}, 2)+"]"),
			api.L7TypeResponse, api.VerdictDropped, Redacted, uint64(3 * time.Millisecond), []api.PolicyRef{shopWeb, lockdown}},
		{"what the audit engine would deny is AUDIT", nil, audited(xds.PolicyName([]api.PolicyRef{shopWeb}, 0)),
			api.L7TypeResponse, api.VerdictAudit, Redacted, uint64(3 * time.Millisecond), []api.PolicyRef{shopWeb}},
		{"a 403 of the server is FORWARDED", nil, entry(403, "via_upstream"),
			api.L7TypeResponse, api.VerdictForwarded, Redacted, uint64(3 * time.Millisecond), nil},
		{"a kept header is not redacted", []string{"Authorization"}, entry(200, "via_upstream"),
			api.L7TypeResponse, api.VerdictForwarded, "Bearer s", uint64(3 * time.Millisecond), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{KeepHeaders: tc.keep})
			var f api.Flow
			if err := recordOf(s, tc.e, &f); err != nil {
				t.Fatal(err)
			}
			h := f.L7.HTTP
			if f.Type != api.FlowTypeL7 || f.L7.Type != tc.typ || f.Verdict != tc.verdict || f.L7.LatencyNs != tc.latency {
				t.Errorf("type %v L7 %v verdict %v latency %d, want L7 %v %v %d", f.Type, f.L7.Type, f.Verdict,
					f.L7.LatencyNs, tc.typ, tc.verdict, tc.latency)
			}
			if h.Method != "GET" || h.URL != "http://web/x?y=1" || h.Protocol != "HTTP/1.1" {
				t.Errorf("HTTP %+v", h)
			}
			client, server := netip.MustParseAddrPort("198.18.0.2:40000"), netip.MustParseAddrPort("198.18.0.3:80")
			if tc.typ == api.L7TypeResponse { // from the server back to the client, as Hubble's
				client, server = server, client
			}
			if netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort) != client || netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort) != server ||
				f.IsReply != (tc.typ == api.L7TypeResponse) || f.Interface.Index != 7 || f.TrafficDirection != api.TrafficDirectionIngress {
				t.Errorf("record %v -> %v reply %v at %d %v, want %v -> %v", netip.AddrPortFrom(f.IP.Source, f.L4.SourcePort),
					netip.AddrPortFrom(f.IP.Destination, f.L4.DestinationPort), f.IsReply, f.Interface.Index, f.TrafficDirection, client, server)
			}
			if !slices.Equal(f.IngressDeniedBy, tc.deniedBy) || f.EgressDeniedBy != nil ||
				tc.verdict != api.VerdictForwarded && f.DropReason != api.DropReasonPolicyDenied {
				t.Errorf("denied by %v / %v reason %v, want ingress %v", f.IngressDeniedBy, f.EgressDeniedBy, f.DropReason, tc.deniedBy)
			}
			got := map[string]string{}
			for _, hd := range h.Headers {
				got[hd.Key] = hd.Value
			}
			if got["authorization"] != tc.auth || got["cookie"] != Redacted || got["set-cookie"] != Redacted ||
				got["content-type"] != "text/plain" || got["user-agent"] != "curl/8" {
				t.Errorf("headers %v", got)
			}
		})
	}
	var f api.Flow
	bad := entry(200, "")
	bad.CommonProperties.DownstreamRemoteAddress = nil
	if err := recordOf(New(Options{}), bad, &f); err == nil {
		t.Error("an entry without client address made a record")
	}
}

// recordOf is the record Run makes of e, sent alone in a message.
func recordOf(s *Source, e *alsdata.HTTPAccessLogEntry, f *api.Flow) error {
	b, err := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*alsdata.HTTPAccessLogEntry{e}}}})
	if err != nil {
		return err
	}
	var d httpEntry
	n := 0
	_, err = eachEntry(b, func(b []byte) error {
		n++
		if err := d.decode(b); err != nil {
			return err
		}
		return s.record(&d, f)
	})
	if err == nil && n != 1 {
		err = fmt.Errorf("%d entries decoded, want 1", n)
	}
	return err
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
