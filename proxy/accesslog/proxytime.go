package accesslog

import "time"

// proxyTime is Envoy's own share of a forwarded exchange, from the
// timings its entry carries (each an interval from the first downstream
// byte received, as envoy/data/accesslog/v3/accesslog.proto defines them):
// the request's time in Envoy, from its last byte received to the first
// byte sent upstream (filters, routing, an upstream connection when the
// pool had none), plus the response's, from its first byte received from
// upstream to the first byte sent downstream. A part that is negative (a
// request body streamed upstream before it all arrived) counts as 0. ok
// is false when the exchange was not forwarded (a response of Envoy's own,
// a failure before upstream) or a timing is missing.
func (e *httpEntry) proxyTime() (d time.Duration, ok bool) {
	lastRx, ok1 := duration(e.lastRx)
	upTx, ok2 := duration(e.firstUpstreamTx)
	upRx, ok3 := duration(e.firstUpstreamRx)
	downTx, ok4 := duration(e.firstDownstreamTx)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, false
	}
	return max(upTx-lastRx, 0) + max(downTx-upRx, 0), true
}
