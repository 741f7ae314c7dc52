// Package netlab builds network-namespace "pods" joined by veth pairs, for
// tests, benchmarks and the demo. Addresses come from 198.18.0.0/15 and
// fd00::/8, there is no route out, and Close removes everything a lab made.
// The collector's production path must not use it.
package netlab
