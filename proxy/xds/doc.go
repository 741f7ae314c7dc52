// Package xds owns Periscope's side of Envoy's configuration: it builds the
// whole xDS snapshot of the node's proxy (one transparent listener per
// redirected endpoint port, their routes, the original-destination
// cluster) from a list of Listeners, checks it with Snapshot.Check before
// it is set, and serves it over ADS (stream.go: the state-of-the-world
// protocol, written here rather than taken from go-control-plane's server,
// whose logging package links package testing into the binary), counting
// the NACKs Envoy sends back and telling which version Envoy last accepted.
//
// Envoy knows nothing but what this package serves; its bootstrap has only
// the node id, the xDS cluster (XDSCluster, which the access logs also
// use) and the admin address (package proxy/envoy).
//
// A listener's L7 policy (Rules: peer groups by address and the HTTP
// rules each may send) becomes an RBAC filter in Envoy's matcher form
// (rbac.go): denials name the deciding policies in their response code
// details, an audit listener's shadow matcher reports in the entry's
// dynamic metadata.
//
// It must not decide which ports are redirected or what a peer may send
// (the caller does: compiled L7 policy, or a flag for visibility) nor
// touch the kernel.
package xds
