// Package proxy runs the node's L7 proxy: it turns redirects (endpoint,
// direction, port, L7 rules) into Envoy listeners served over xDS
// (proxy/xds) and into the datapath's transparent redirect, in the order
// that never sends a connection to a listener that is not there yet, runs
// and supervises Envoy (proxy/envoy) or serves one the user runs, and
// serves the access-log source (proxy/accesslog) on the same gRPC server,
// a Unix socket only root can reach.
//
// Fail closed: while Envoy is down (crashed, restarting), connections to a
// redirected port are dropped by the datapath (their SYNs are retried by
// the client and get through once Envoy is back and has its listeners
// again), never sent direct; its established connections are reset.
//
// Redirects come from L7 policy (ApplyL7: compiled L7 ports, each
// listener judging requests with the policy's rules) and from the
// --proxy-redirect flag (SetRedirects: visibility); policy wins where both
// name a port. It must not decide which ports are redirected or which
// requests are allowed (the compiled policy and the flag do), nor enrich
// records.
package proxy
