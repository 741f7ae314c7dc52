// Package netlab builds network-namespace "pods" joined by veth pairs, for
// tests, benchmarks and the demo. Addresses come from 198.18.0.0/15 and
// fd00::/8, there is no route out, and Close removes everything a lab made.
// Each lab claims a slot (a /24, a /64 and the id in its names) with a lock
// file, so labs of parallel test binaries never collide. Named namespaces
// are made and removed as iproute2 does (netns.go), so labs and `ip netns`
// coexist in any order. The package also runs repeating traffic between
// pods (RunTraffic) and measures throughput with iperf3 (Throughput).
// The collector's production path must not use it.
package netlab
