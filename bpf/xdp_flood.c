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
	__u64 n = generated++;
	if (sport_count > 1)
		udp->source = bpf_htons((__u16)(sport_first + (__u32)(n % sport_count)));
	return bpf_redirect(target_ifindex, 0);
}
