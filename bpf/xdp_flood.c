// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_flood.c: an in-kernel packet generator for benchmarks.
 *
 * Run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES (Linux >= 5.18),
 * never attached: every repetition gets a page-pool copy of one prebuilt
 * Ethernet + IPv4 + UDP frame, the program rewrites its UDP source port and
 * redirects it out of target_ifindex. Out of a pod's end of a veth pair, the
 * frame enters the host end as if the pod had sent it, without the sender's
 * syscall and socket path.
 *
 * The UDP checksum of the frame must be 0 (none, allowed for IPv4): the
 * source port changes under it. The IPv4 header is not touched.
 *
 * Paced (interval_ns > 0), a repetition sends a frame only when one is due
 * (one every interval_ns from the first) and drops its copy otherwise: the
 * run loop then spins through cheap drops between due frames, and frames
 * leave at a fixed rate, evenly spaced, whatever the receiver does. One
 * long BPF_PROG_TEST_RUN call holds the rate; a call per batch would not
 * (each call with repeat > 1 swaps the program in and out of the XDP
 * dispatcher: milliseconds).
 */
/* Kernel and libbpf headers are not ours to pad. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#pragma clang diagnostic pop

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set at load time. */
volatile const __u32 target_ifindex = 0;
volatile const __u32 sport_first = 1024; /* host order */
volatile const __u32 sport_count = 1;    /* source ports cycled through */

/*
 * Pacing, set between runs: the interval between frames (0: unpaced, every
 * repetition sends), when the next one is due (0: at the next repetition),
 * and how far behind the schedule the loop may fall (descheduled, or
 * interrupted) and still send the frames it missed, back to back; beyond
 * it they are given up and counted in behind.
 */
__u64 interval_ns = 0;
__u64 next_due = 0;
__u64 max_lag_ns = 1000000;
__u64 behind = 0;

/*
 * Frames generated so far. One generator runs at a time, on one CPU, so a
 * plain increment is exact; the Go side reads it only between runs.
 */
__u64 generated = 0;

SEC("xdp")
int xdp_flood(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end)
		return XDP_ABORTED;
	if (interval_ns) {
		__u64 now = bpf_ktime_get_ns();

		if (!next_due)
			next_due = now;
		if (now < next_due)
			return XDP_DROP;
		if (now - next_due > max_lag_ns) {
			__u64 missed = (now - next_due - max_lag_ns) / interval_ns;

			behind += missed;
			next_due += missed * interval_ns;
		}
		next_due += interval_ns;
	}
	__u64 n = generated++;
	if (sport_count > 1)
		udp->source = bpf_htons((__u16)(sport_first + (__u32)(n % sport_count)));
	return bpf_redirect(target_ifindex, 0);
}
