package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics owns the HTTP golden signals, fed by L7 records.
type httpMetrics struct {
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	reqs      *family[httpKey, prometheus.Counter]
	durs      *family[string, prometheus.Observer]
}

type httpKey struct {
	method string // one of httpMethods, or "other"
	status int    // 0 when outside 100..599
}

// httpMethods are the methods given their own label value; any other is
// "other", so that a client cannot create series at will.
var httpMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

func newHTTPMetrics(o Options) *httpMetrics {
	h := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "periscope_http_requests_total",
			Help: "HTTP requests seen in L7 records, by method and response status code (0 when unknown).",
		}, []string{"method", "status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "periscope_http_request_duration_seconds",
			Help:    "Time from an HTTP request to its response, seen in L7 records, by method.",
			Buckets: o.HTTPBuckets,
		}, []string{"method"}),
	}
	h.reqs = newFamily(vec[prometheus.Counter](h.requests), o.MaxSeries, 2, func(k httpKey) []string {
		return []string{k.method, strconv.Itoa(k.status)}
	})
	h.durs = newFamily(vec[prometheus.Observer](h.durations), o.MaxSeries, 1, func(m string) []string {
		return []string{m}
	})
	return h
}

// ObserveHTTP counts one HTTP request with its response status and the time
// to the response. Methods other than the standard ones count as "other";
// status codes outside 100..599 as 0.
func (m *Metrics) ObserveHTTP(method string, status int, d time.Duration) {
	method = normalizeMethod(method)
	if status < 100 || status > 599 {
		status = 0
	}
	m.http.reqs.get(httpKey{method, status}).Inc()
	m.http.durs.get(method).Observe(d.Seconds())
}

func normalizeMethod(method string) string {
	for _, known := range httpMethods {
		if method == known {
			return known
		}
	}
	return "other"
}

// Describe implements prometheus.Collector.
func (h *httpMetrics) Describe(ch chan<- *prometheus.Desc) {
	h.requests.Describe(ch)
	h.durations.Describe(ch)
}

// Collect implements prometheus.Collector.
func (h *httpMetrics) Collect(ch chan<- prometheus.Metric) {
	h.requests.Collect(ch)
	h.durations.Collect(ch)
}
