// Package oteltest is an OTLP receiver for tests: it serves OTLP/gRPC or
// OTLP/HTTP on loopback and keeps every request, with helpers to read the
// metrics and log records received.
//
// The package must not be imported outside tests.
package oteltest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	collectorlogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Receiver is an OTLP receiver in the test process: it keeps every request.
type Receiver struct {
	collectormetrics.UnimplementedMetricsServiceServer
	collectorlogs.UnimplementedLogsServiceServer

	mu      sync.Mutex
	metrics []*collectormetrics.ExportMetricsServiceRequest
	logs    []*collectorlogs.ExportLogsServiceRequest
}

// Export implements the metrics service: it keeps the request.
func (r *Receiver) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = append(r.metrics, req)
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

// logsServer is the Receiver's LogsServiceServer: both services have a
// method named Export.
type logsServer struct {
	collectorlogs.UnimplementedLogsServiceServer
	r *Receiver
}

func (s logsServer) Export(_ context.Context, req *collectorlogs.ExportLogsServiceRequest) (*collectorlogs.ExportLogsServiceResponse, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.logs = append(s.r.logs, req)
	return &collectorlogs.ExportLogsServiceResponse{}, nil
}

// StartGRPC serves OTLP/gRPC on a loopback port and returns its
// address.
func StartGRPC(t testing.TB) (*Receiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	r := &Receiver{}
	srv := grpc.NewServer()
	collectormetrics.RegisterMetricsServiceServer(srv, r)
	collectorlogs.RegisterLogsServiceServer(srv, logsServer{r: r})
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return r, lis.Addr().String()
}

// StartHTTP serves OTLP/HTTP with protobuf bodies and returns its
// base URL.
func StartHTTP(t testing.TB) (*Receiver, string) {
	t.Helper()
	r := &Receiver{}
	mux := http.NewServeMux()
	handle := func(path string, req, resp proto.Message) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, hr *http.Request) {
			if ct := hr.Header.Get("Content-Type"); ct != "application/x-protobuf" {
				t.Errorf("%s: Content-Type %q", path, ct)
			}
			body, err := io.ReadAll(hr.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			m := proto.Clone(req)
			if err := proto.Unmarshal(body, m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.mu.Lock()
			switch m := m.(type) {
			case *collectormetrics.ExportMetricsServiceRequest:
				r.metrics = append(r.metrics, m)
			case *collectorlogs.ExportLogsServiceRequest:
				r.logs = append(r.logs, m)
			}
			r.mu.Unlock()
			out, _ := proto.Marshal(resp)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(out) //nolint:errcheck // the client's problem
		})
	}
	handle("/base/v1/metrics", &collectormetrics.ExportMetricsServiceRequest{}, &collectormetrics.ExportMetricsServiceResponse{})
	handle("/base/v1/logs", &collectorlogs.ExportLogsServiceRequest{}, &collectorlogs.ExportLogsServiceResponse{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return r, srv.URL + "/base"
}

// LogRecords returns every log record received, with its resource.
func (r *Receiver) LogRecords() ([]*logspb.LogRecord, []*resourcepb.Resource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var recs []*logspb.LogRecord
	var res []*resourcepb.Resource
	for _, req := range r.logs {
		for _, rl := range req.GetResourceLogs() {
			res = append(res, rl.GetResource())
			for _, sl := range rl.GetScopeLogs() {
				recs = append(recs, sl.GetLogRecords()...)
			}
		}
	}
	return recs, res
}

// LastMetrics returns the metrics of the last metrics request by name, and
// its resource. Temporality is cumulative, so the last request holds the
// totals.
func (r *Receiver) LastMetrics(t testing.TB) (map[string]*metricspb.Metric, *resourcepb.Resource) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.metrics) == 0 {
		t.Fatal("no metrics request received")
	}
	out := map[string]*metricspb.Metric{}
	var res *resourcepb.Resource
	for _, rm := range r.metrics[len(r.metrics)-1].GetResourceMetrics() {
		res = rm.GetResource()
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				out[m.GetName()] = m
			}
		}
	}
	return out, res
}

// Points returns a sum's or gauge's data points: value by attributes
// (attrString).
func Points(m *metricspb.Metric) map[string]int64 {
	out := map[string]int64{}
	var dps []*metricspb.NumberDataPoint
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Sum:
		dps = d.Sum.GetDataPoints()
	case *metricspb.Metric_Gauge:
		dps = d.Gauge.GetDataPoints()
	}
	for _, dp := range dps {
		out[attrString(dp.GetAttributes())] += dp.GetAsInt()
	}
	return out
}

// Total is the sum of a sum's or gauge's data points.
func Total(m *metricspb.Metric) int64 {
	var s int64
	for _, v := range Points(m) {
		s += v
	}
	return s
}

// attrString is "k=v,k=v" in the attributes' order (the SDK sorts them).
func attrString(kvs []*commonpb.KeyValue) string {
	s := ""
	for i, kv := range kvs {
		if i > 0 {
			s += ","
		}
		s += kv.GetKey() + "=" + anyString(kv.GetValue())
	}
	return s
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		if x.BoolValue {
			return "true"
		}
		return "false"
	}
	return v.String()
}

// Attrs returns key/value pairs as a map of strings.
func Attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = anyString(kv.GetValue())
	}
	return out
}

// ClosedPort returns a loopback address nothing listens on.
func ClosedPort(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}
