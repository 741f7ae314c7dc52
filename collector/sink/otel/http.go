package otel

import (
	"context"
	"fmt"
	"time"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// httpMetrics owns the HTTP golden signals, fed by L7 records.
type httpMetrics struct {
	requests  metric.Int64Counter
	durations metric.Float64Histogram
	reqs      *series[httpKey]
	durs      *series[string]
}

type httpKey struct {
	method string // one of httpMethods, or methodOther
	status int    // 0 when outside 100..599
}

// methodOther is the semantic conventions' value of http.request.method for
// a method that is not a standard one (the Prometheus label says "other").
const methodOther = "_OTHER"

// httpMethods are the methods given their own attribute value; any other is
// methodOther, so that a client cannot create series at will.
var httpMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

func newHTTPMetrics(meter metric.Meter, o metrics.Options) (*httpMetrics, error) {
	h := &httpMetrics{}
	var err error
	if h.requests, err = meter.Int64Counter("periscope.http.requests", metric.WithUnit("{request}"),
		metric.WithDescription("HTTP requests seen in L7 records, by method and response status code (absent when unknown).")); err != nil {
		return nil, fmt.Errorf("create periscope.http.requests: %w", err)
	}
	if h.durations, err = meter.Float64Histogram("periscope.http.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from an HTTP request to its response, seen in L7 records, by method."),
		metric.WithExplicitBucketBoundaries(o.HTTPBuckets...)); err != nil {
		return nil, fmt.Errorf("create periscope.http.request.duration: %w", err)
	}
	h.reqs = newSeries(o.MaxSeries, func(k httpKey) attribute.Set {
		if k.status == 0 {
			return attribute.NewSet(semconv.HTTPRequestMethodKey.String(k.method))
		}
		return attribute.NewSet(semconv.HTTPRequestMethodKey.String(k.method), semconv.HTTPResponseStatusCode(k.status))
	})
	h.durs = newSeries(o.MaxSeries, func(m string) attribute.Set {
		return attribute.NewSet(semconv.HTTPRequestMethodKey.String(m))
	})
	return h, nil
}

// ObserveHTTP counts one HTTP request with its response status and the time
// to the response. Methods other than the standard ones count as "_OTHER";
// status codes outside 100..599 leave http.response.status_code out.
func (m *Metrics) ObserveHTTP(method string, status int, d time.Duration) {
	method = normalizeMethod(method)
	if status < 100 || status > 599 {
		status = 0
	}
	ctx := context.Background()
	m.http.requests.Add(ctx, 1, m.http.reqs.get(httpKey{method, status}))
	m.http.durations.Record(ctx, d.Seconds(), m.http.durs.get(method))
}

func normalizeMethod(method string) string {
	for _, known := range httpMethods {
		if method == known {
			return known
		}
	}
	return methodOther
}
