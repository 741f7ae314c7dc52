// Package accesslog is a flow source: it serves Envoy's gRPC access-log
// service (envoy.service.accesslog.v3 StreamAccessLogs) and turns each
// HTTP access-log entry into exactly one L7 flow record (api.Flow of Type
// FlowTypeL7, Hubble's Layer7 shape), emitted by Run.
//
// One record per exchange: Envoy logs an exchange once, when it ends, so
// the record is a RESPONSE (code, method, URL, protocol, headers, latency:
// the time from the request's start to the first byte of the upstream's
// response), or a REQUEST when no response was sent (the client went away
// first). A RESPONSE goes, like Hubble's, from the server back to the
// client (IsReply); a REQUEST from the client to the server. The record's
// Interface index is the endpoint the redirect was for, and its traffic
// direction the redirect's (ingress: the server's, egress: the
// client's), which the collector keeps. Verdict FORWARDED; DROPPED
// (reason 133) when L7 policy refused the request, AUDIT when an audit
// listener's policy would have, both naming the deciding policies
// (IngressDeniedBy or EgressDeniedBy) from the RBAC filter's verdict.
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
