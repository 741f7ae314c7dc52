// Package accesslog is a flow source: it serves Envoy's gRPC access-log
// service (envoy.service.accesslog.v3 StreamAccessLogs) and turns each
// HTTP access-log entry into the L7 flow records (api.Flow of Type
// FlowTypeL7, Hubble's Layer7 shape) Hubble shows of an exchange, emitted
// by Run.
//
// Envoy logs an exchange once, when it ends; of it Run makes a REQUEST
// record (method, URL, protocol, request headers), from the client to the
// server at the request's start, and, when a response was sent, a
// RESPONSE record (code, latency: the time from the request's start to the
// first byte of the upstream's response, response headers), like Hubble's
// from the server back to the client (IsReply) when it ended. Both carry
// the endpoint the redirect was for as their Interface index and the
// redirect's traffic direction (ingress: the server's, egress: the
// client's), which the collector keeps. The REQUEST carries the L7
// policy's decision: FORWARDED; DROPPED (reason 133) when L7 policy
// refused the request, AUDIT when an audit listener's policy would have,
// both naming the deciding policies (IngressDeniedBy or EgressDeniedBy)
// from the RBAC filter's verdict. The RESPONSE is FORWARDED, the 403 of a
// denied request too, as Cilium's proxy reports it.
//
// Of a forwarded exchange Run also reads Envoy's own share of its time
// (the request's last byte received to its first byte sent upstream, plus
// the upstream response's first byte received to its first byte sent
// downstream, from the entry's timings) and hands it to Options.ProxyTime
// when set: Hubble's flow has no field for it, so it is not on a record.
//
// Sensitive headers (Authorization, Cookie, Set-Cookie,
// Proxy-Authorization) keep their name with the value "HUBBLE_REDACTED",
// as Hubble's redaction does, unless Options.KeepHeaders names them.
//
// The service's messages are not decoded by gRPC: the server that
// serves it is made with ServerCodec, which hands them over as bytes, and
// Run reads only the fields a record needs in place (decode.go), without
// protobuf's reflection, maps and message per field, which cost about
// four fifths of the source's CPU (docs/BENCHMARKS.md).
//
// It must not configure Envoy (proxy/xds does) nor enrich records with
// endpoints (the collector does, by IP).
package accesslog
