// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_trace.c: TCP connections of host processes, from the
 * sock/inet_sock_set_state tracepoint. Emits a FLOW_KIND_SOCK event on the
 * transitions to SYN_SENT, ESTABLISHED and CLOSE with pid, comm and cgroup
 * id; on CLOSE the counts come from the tcp_sock (bytes_acked /
 * bytes_received, segs_out / segs_in): segments, and TCP sequence space
 * rather than payload bytes: the kernel counts one more for an acked FIN, a
 * received FIN, and an active opener's acked SYN. Not frame lengths as in
 * tc_flow.c.
 *
 * connect() enters SYN_SENT before it picks the source port: the SYN_SENT
 * record of an unbound socket has source port 0.
 *
 * pid, comm and cgroup id are those of the current task: meaningful only
 * when the transition runs in process context (connect(), close(),
 * accept()-side ESTABLISHED is NOT: a passive open completes in softirq,
 * and a CLOSE after a timer or an RST may too).
 */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#pragma clang diagnostic pop

#include "flow.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3
#define TCP_CLOSE_ 7

/* What a socket's earlier transitions told us, until it closes. */
struct sock_info {
	__u64 first_seen;
	__u8 local_is_initiator;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* skaddr */
	__type(value, struct sock_info);
} socks SEC(".maps");

SEC("tracepoint/sock/inet_sock_set_state")
int sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	int newstate = BPF_CORE_READ(ctx, newstate);
	int oldstate = BPF_CORE_READ(ctx, oldstate);
	__u16 family = BPF_CORE_READ(ctx, family);
	__u64 sk = (__u64)BPF_CORE_READ(ctx, skaddr);
	__u64 now = bpf_ktime_get_boot_ns();
	struct sock_info *si, nsi = {};
	struct flow_event *e;

	if (BPF_CORE_READ(ctx, protocol) != IPPROTO_TCP)
		return 0;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (newstate != TCP_SYN_SENT_ && newstate != TCP_ESTABLISHED_ && newstate != TCP_CLOSE_)
		return 0;

	si = bpf_map_lookup_elem(&socks, &sk);
	if (!si) {
		if (newstate == TCP_CLOSE_ && oldstate != TCP_SYN_SENT_ &&
		    oldstate != TCP_ESTABLISHED_ && oldstate != TCP_SYN_RECV_)
			return 0; /* never connected: e.g. a listener closing */
		nsi.first_seen = now;
		/* A passive open reaches ESTABLISHED from SYN_RECV. */
		nsi.local_is_initiator = oldstate != TCP_SYN_RECV_;
		if (newstate != TCP_CLOSE_)
			bpf_map_update_elem(&socks, &sk, &nsi, BPF_ANY);
		si = &nsi;
	}

	e = reserve_event();
	if (!e) {
		if (newstate == TCP_CLOSE_)
			bpf_map_delete_elem(&socks, &sk);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = now;
	e->first_seen = si->first_seen;
	e->last_seen = now;
	e->src_is_initiator = si->local_is_initiator;
	if (newstate == TCP_CLOSE_) {
		struct tcp_sock *tp = (struct tcp_sock *)sk;
		__u64 sent = BPF_CORE_READ(tp, bytes_acked);
		__u64 recv = BPF_CORE_READ(tp, bytes_received);
		__u64 out = BPF_CORE_READ(tp, segs_out);
		__u64 in = BPF_CORE_READ(tp, segs_in);

		if (si->local_is_initiator) {
			e->packets_fwd = out;
			e->bytes_fwd = sent;
			e->packets_rev = in;
			e->bytes_rev = recv;
		} else {
			e->packets_fwd = in;
			e->bytes_fwd = recv;
			e->packets_rev = out;
			e->bytes_rev = sent;
		}
		bpf_map_delete_elem(&socks, &sk);
	}
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/*
	 * The tracepoint's saddr/daddr are __u8[4]: read all four bytes (not
	 * BPF_CORE_READ_INTO on &e->saddr[0], which reads sizeof(__u8) = 1).
	 */
	if (family == AF_INET) {
		e->family = 4;
		bpf_core_read(e->saddr, sizeof(ctx->saddr), &ctx->saddr);
		bpf_core_read(e->daddr, sizeof(ctx->daddr), &ctx->daddr);
	} else {
		e->family = 6;
		BPF_CORE_READ_INTO(&e->saddr, ctx, saddr_v6);
		BPF_CORE_READ_INTO(&e->daddr, ctx, daddr_v6);
	}
	/* The tracepoint stores ports in host byte order already. */
	e->sport = BPF_CORE_READ(ctx, sport);
	e->dport = BPF_CORE_READ(ctx, dport);
	e->proto = IPPROTO_TCP;
	e->kind = FLOW_KIND_SOCK;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
