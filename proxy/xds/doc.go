// Package xds owns Periscope's side of Envoy's configuration: it builds the
// whole xDS snapshot of the node's proxy (one transparent listener per
// redirected endpoint port, their routes, the original-destination
// cluster) from a list of Listeners, checks it with Consistent() before it
// is set, and serves it over ADS (go-control-plane), counting the NACKs
// Envoy sends back and telling which version Envoy last accepted.
//
// Envoy knows nothing but what this package serves; its bootstrap has only
// the node id, the xDS cluster (XDSCluster, which the access logs also
// use) and the admin address (package proxy/envoy).
//
// It must not decide which ports are redirected (the caller does: a flag
// today, L7 policy later) nor touch the kernel.
package xds
