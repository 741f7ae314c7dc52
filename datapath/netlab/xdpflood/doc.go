// Package xdpflood generates UDP floods in the kernel, for benchmarks: an
// XDP program run with BPF_PROG_TEST_RUN in live-frame mode redirects copies
// of one prebuilt frame out of a network interface, so the flood costs no
// syscall, socket or IP output per packet and the sender is not what limits
// a benchmark of the receiving path. It owns the frame's layout and the
// program's run loop; which interface, namespace and CPU it runs in are the
// caller's. The collector's production path must not use it.
package xdpflood
