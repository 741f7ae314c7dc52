// Package accesslog is a flow source: it serves Envoy's gRPC access-log
// service (envoy.service.accesslog.v3 StreamAccessLogs) and turns each
// HTTP access-log entry into exactly one L7 flow record (api.Flow of Type
// FlowTypeL7, Hubble's Layer7 shape), emitted by Run.
//
// One record per exchange: Envoy logs an exchange once, when it ends, so
// the record is a RESPONSE (code, method, URL, protocol, headers, latency:
// the time from the request's start to the first byte of the upstream's
// response), or a REQUEST when no response was sent (the client went away
// first). Source is the client and Destination the server, as in every
// Periscope record (Source is the initiator). The record's Interface
// index is the endpoint the redirect was for, so the collector's
// enrichment gives it the traffic direction (ingress: the server's,
// egress: the client's). Verdict FORWARDED, or DROPPED (reason 133) when
// Envoy refused the request for policy (RBAC or ext_authz).
//
// Sensitive headers (Authorization, Cookie, Set-Cookie,
// Proxy-Authorization) keep their name with the value "HUBBLE_REDACTED",
// as Hubble's redaction does, unless Options.KeepHeaders names them.
//
// It must not configure Envoy (proxy/xds does) nor enrich records with
// endpoints (the collector does, by IP).
package accesslog
