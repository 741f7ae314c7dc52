package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"

	"github.com/periscope-dev/periscope/api"
)

// Redacted replaces the value of a sensitive header.
const Redacted = "HUBBLE_REDACTED"

// SensitiveHeaders are redacted unless kept (lower case).
var SensitiveHeaders = []string{"authorization", "cookie", "proxy-authorization", "set-cookie"}

// DefaultRequestHeaders and DefaultResponseHeaders are the headers Envoy
// is asked to log besides what every entry carries (user agent, referer,
// request id, forwarded-for); traceparent gives both records their trace
// ID (api.L7.TraceID).
var (
	DefaultRequestHeaders  = []string{"authorization", "content-length", "content-type", "cookie", "proxy-authorization", api.TraceParentHeader}
	DefaultResponseHeaders = []string{"content-length", "content-type", "location", "set-cookie"}
)

// Options configure a Source.
type Options struct {
	// KeepHeaders are sensitive headers whose values are kept (any case).
	KeepHeaders []string
	// Queue is how many messages of entries wait for Run (default 1024);
	// when it is full the gRPC streams wait, and Envoy buffers.
	Queue int
	// Logger is the parent logger; nil discards.
	Logger *slog.Logger
	// ProxyTime, when set, is called by Run with Envoy's own share of each
	// forwarded exchange (proxytime.go): the time its request and its
	// response spent in Envoy, without the upstream's. Hubble's flow has no
	// field for it; it feeds a benchmark's or a metric's distribution.
	ProxyTime func(time.Duration)
}

// Stats count what the source received and made.
type Stats struct {
	Entries uint64 // HTTP access-log entries received
	Records uint64 // L7 records emitted: a REQUEST per entry, and a RESPONSE per entry answered
	Skipped uint64 // entries that were not HTTP, or without addresses
	Streams int64  // access-log streams open
}

// Source is the access-log service and the flow source built on it.
type Source struct {
	alsv3.UnimplementedAccessLogServiceServer

	log       *slog.Logger
	redact    map[string]bool
	proxyTime func(time.Duration)
	messages  chan []byte // StreamAccessLogsMessages, marshalled

	entries, records, skipped atomic.Uint64
	streams                   atomic.Int64
}

// New makes a Source.
func New(opts Options) *Source {
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	redact := map[string]bool{}
	for _, h := range SensitiveHeaders {
		redact[h] = true
	}
	for _, h := range opts.KeepHeaders {
		delete(redact, strings.ToLower(h))
	}
	return &Source{log: log.With("component", "accesslog"), redact: redact, proxyTime: opts.ProxyTime,
		messages: make(chan []byte, opts.Queue)}
}

// Register adds the access-log service to g, which must have been made
// with ServerCodec: the service receives its messages as bytes, which Run
// decodes.
func (s *Source) Register(g *grpc.Server) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "envoy.service.accesslog.v3.AccessLogService",
		HandlerType: (*alsv3.AccessLogServiceServer)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "StreamAccessLogs", ClientStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error { return srv.(*Source).receive(stream) }}},
		Metadata: "envoy/service/accesslog/v3/als.proto",
	}, s)
}

// Stats returns the counters.
func (s *Source) Stats() Stats {
	return Stats{Entries: s.entries.Load(), Records: s.records.Load(), Skipped: s.skipped.Load(), Streams: s.streams.Load()}
}

// StreamAccessLogs receives one Envoy's stream of entries (decoded by
// protobuf: Register serves receive instead).
func (s *Source) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	return s.receive(stream)
}

// receive queues the messages of one Envoy's stream for Run, as they came:
// gRPC's receive makes a copy of each, so no decoding happens here.
func (s *Source) receive(stream grpc.ServerStream) error {
	s.streams.Add(1)
	defer s.streams.Add(-1)
	ctx := stream.Context()
	for {
		var msg rawMessage
		err := stream.RecvMsg(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case s.messages <- msg:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Name names the source in the collector's errors and logs.
func (s *Source) Name() string { return "envoy-accesslog" }

// Run emits, per HTTP entry received, its REQUEST record and, when a
// response was sent, its RESPONSE record, from one goroutine,
// with a reused Flow valid only during the call, until ctx ends. It
// decodes each message in place (decode.go): only what the record needs,
// without protobuf's reflection, maps and a message per field.
func (s *Source) Run(ctx context.Context, emit func(*api.Flow)) error {
	var f api.Flow
	var e httpEntry
	each := func(b []byte) error {
		s.entries.Add(1)
		err := e.decode(b)
		var x exchange
		if err == nil {
			x, err = exchangeOf(&e)
		}
		if err == nil {
			err = s.request(&x, &e, &f)
		}
		if err != nil {
			s.skipped.Add(1)
			s.log.Debug("access-log entry skipped", "err", err)
			return nil
		}
		s.records.Add(1)
		emit(&f)
		if s.proxyTime != nil {
			if d, ok := e.proxyTime(); ok {
				s.proxyTime(d)
			}
		}
		if s.response(&x, &e, &f) {
			s.records.Add(1)
			emit(&f)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-s.messages:
			tcp, err := eachEntry(msg, each)
			s.skipped.Add(uint64(tcp))
			if err != nil {
				s.skipped.Add(1)
				s.log.Warn("malformed access-log message: the rest of it skipped", "err", err)
			}
		}
	}
}

// String describes the source in logs.
func (s *Source) String() string { return fmt.Sprintf("accesslog(%+v)", s.Stats()) }
