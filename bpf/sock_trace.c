// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_trace.c: TCP connections of host processes, from the
 * sock/inet_sock_set_state tracepoint. Emits ONE FLOW_KIND_SOCK event per
 * socket, when it closes (CLOSE), with its tuple, its counts, when it was
 * first seen, whether it opened the connection, and its process: pid, comm
 * and cgroup id. On CLOSE the counts come from the tcp_sock (bytes_acked /
 * bytes_received, segs_out / segs_in): segments, and TCP sequence space
 * rather than payload bytes: the kernel counts one more for an acked FIN, a
 * received FIN, and an active opener's acked SYN. Not frame lengths as in
 * tc_flow.c. The collector merges the event into the record of the
 * connection the flow programs saw, when they saw it.
 *
 * The process is taken where the transition runs in the process's own
 * context: connect() (to SYN_SENT) for the side that opens the connection,
 * close() or shutdown() (to FIN_WAIT1 or LAST_ACK) for the other, whose
 * passive open completes in softirq. A socket that closes without any such
 * transition (an RST received before the application closed it) has no
 * process (pid 0). A socket is followed from its first transition the
 * program sees; one already open when it was attached is reported only if
 * it closes from SYN_SENT, SYN_RECV or ESTABLISHED.
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
#define TCP_FIN_WAIT1_ 4
#define TCP_CLOSE_ 7
#define TCP_LAST_ACK_ 9

/* What a socket's earlier transitions told us, until it closes. */
struct sock_info {
	__u64 first_seen;
	__u64 cgroup_id;
	__u32 pid;
	__u8 local_is_initiator;
	__u8 has_process; /* pid, comm and cgroup_id are the owner's */
	__u8 pad[2];
	char comm[16];
};

/* Default size; the loader overrides max_entries from Config. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* skaddr */
	__type(value, struct sock_info);
} socks SEC(".maps");

/* take_process records the current task as the socket's process. */
static __always_inline void take_process(struct sock_info *si)
{
	si->cgroup_id = bpf_get_current_cgroup_id();
	si->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(si->comm, sizeof(si->comm));
	si->has_process = 1;
}

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

	switch (newstate) {
	case TCP_SYN_SENT_: /* connect(): the opener, in its own context */
		nsi.first_seen = now;
		nsi.local_is_initiator = 1;
		take_process(&nsi);
		bpf_map_update_elem(&socks, &sk, &nsi, BPF_ANY);
		return 0;
	case TCP_ESTABLISHED_:
		if (bpf_map_lookup_elem(&socks, &sk))
			return 0;
		/* A passive open reaches ESTABLISHED from SYN_RECV, in softirq. */
		nsi.first_seen = now;
		nsi.local_is_initiator = oldstate != TCP_SYN_RECV_;
		bpf_map_update_elem(&socks, &sk, &nsi, BPF_NOEXIST);
		return 0;
	case TCP_FIN_WAIT1_:
	case TCP_LAST_ACK_: /* close() or shutdown(), in the owner's context */
		si = bpf_map_lookup_elem(&socks, &sk);
		if (si && !si->has_process)
			take_process(si);
		return 0;
	case TCP_CLOSE_:
		break;
	default:
		return 0;
	}

	si = bpf_map_lookup_elem(&socks, &sk);
	if (!si) {
		if (oldstate != TCP_SYN_SENT_ && oldstate != TCP_ESTABLISHED_ && oldstate != TCP_SYN_RECV_)
			return 0; /* never connected: e.g. a listener closing */
		nsi.first_seen = now;
		nsi.local_is_initiator = oldstate != TCP_SYN_RECV_;
		si = &nsi;
	}

	e = reserve_event();
	if (!e) {
		bpf_map_delete_elem(&socks, &sk);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = now;
	e->first_seen = si->first_seen;
	e->last_seen = now;
	e->src_is_initiator = si->local_is_initiator;
	{
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
	}
	if (si->has_process) {
		e->cgroup_id = si->cgroup_id;
		e->pid = si->pid;
		__builtin_memcpy(e->comm, si->comm, sizeof(e->comm));
	}
	bpf_map_delete_elem(&socks, &sk);
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
	submit_event(e);
	return 0;
}
