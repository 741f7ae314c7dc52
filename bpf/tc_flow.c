// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_flow.c: per-connection flow accounting at TC ingress and egress.
 *
 * Every IP packet updates one flow-table entry (exact packet and byte
 * counts both ways, TCP flags and state, first/last seen). An event goes to
 * the ring buffer only when a flow starts, when its verdict changes, and
 * every report_interval_ns of a busy flow: never one event per packet, and
 * none for a TCP flag (SYN-ACK, FIN, RST only mark the entry: a short
 * connection is its START and its End). Flow ends are reported by the
 * userspace sweeper from the table entry, so final counts are exact; the
 * one End built here is that of a closed TCP connection whose tuple a new
 * SYN reuses. Events are submitted without waking the reader (see
 * submit_event in events.h).
 *
 * Policy (identity-based L3/L4, laid out by enforcer/compile): a connection
 * is judged when its entry is created, never per packet. At the host side of
 * a pod's veth, TC ingress sees packets leaving the pod (the endpoint's
 * EGRESS) and TC egress packets to the pod (its INGRESS); the direction and
 * the port judged are those of the connection's initiator, so replies of an
 * allowed connection pass without a lookup. The verdict, drop reason, policy
 * set and the revision that decided are stored in the entry and every event.
 * A dropped connection keeps its entry too: its packets are counted exactly
 * and reported like any flow's, not one event per packet. When the active
 * revision differs from the entry's, the next packet of the connection
 * re-judges it: a policy change applies to existing connections at once
 * (a verdict that changes is reported with a STATE event).
 *
 * Transparent redirect to a local proxy (the redirect and host_mac maps,
 * managed by datapath's SetRedirects): when the initiator's first packet of
 * a TCP connection (its SYN) or a UDP flow enters the host at a TC ingress
 * hook, the connection is not DROPPED, and a redirect entry matches (the
 * initiating endpoint's EGRESS entry for the destination port, else the
 * destination's INGRESS entry for its address and port), the entry is
 * marked FLOW_PROXY_REDIRECT. Then every packet of the initiator is made
 * the host's: the destination MAC becomes the interface's own (a bridge
 * port's MAC is a local entry of the bridge, which then passes the frame up
 * instead of forwarding it to the destination's port), its packet type
 * PACKET_HOST, and skb->mark PROXY_MARK_TO_PROXY, which the policy routing
 * rule the datapath installs delivers locally whatever the destination
 * address. A SYN and each UDP datagram are also given to the proxy's
 * transparent socket on 127.0.0.1 / ::1 at the entry's proxy port
 * (bpf_sk_assign); later TCP packets find the connection the proxy accepted
 * by the stack's own lookup. With no such socket (the proxy is down) the
 * packet is DROPPED and counted: fail closed, never sent direct; a SYN is
 * retried by the client and succeeds once the proxy is back. L3/L4 policy
 * comes first: a DROPPED connection is never redirected. A redirect removed
 * applies to new connections (and to the next datagram of a UDP flow);
 * established TCP connections stay with the proxy until they end. A
 * redirect added takes over an existing UDP flow at its initiator's next
 * datagram (take_over_udp); an established TCP connection to an endpoint's
 * EGRESS redirect that did not go to the proxy (made before the redirect,
 * or first seen past its SYN) is DROPPED (POLICY_DENIED; AUDIT in audit
 * mode) and counted at its next revision or its first packet seen: the
 * proxy cannot take it over, and it would escape the proxy's policy.
 * SetRedirects applies the policy again as a new revision when it adds
 * such a redirect.
 *
 * A connection to an INGRESS (address, port) redirected for policy
 * (REDIRECT_FLAG_POLICY: the proxy enforces L7 rules there) that no TC ingress
 * hook steered (its initiator's first packet reaches the destination's TC
 * egress hook without the proxy's upstream mark: it came through an
 * interface without the datapath, or from the host itself) is DROPPED
 * (POLICY_DENIED; AUDIT for an endpoint in audit mode) and counted: the
 * proxy's policy cannot be bypassed. A policy change re-judges existing
 * connections the same way, so a direct connection made before its port
 * was redirected ends at the next revision.
 *
 * The proxy connects to the original destination from the client's
 * address (IP_TRANSPARENT) with SO_MARK PROXY_MARK_UPSTREAM: such a
 * connection, seen leaving at a TC egress hook, is marked
 * FLOW_PROXY_UPSTREAM and is never redirected; its replies, which would
 * otherwise be bridged to the real client, are made the host's the same way
 * (MAC, type, mark) so they reach the proxy's socket.
 *
 * Packets are modified only by the redirect (destination MAC, mark, packet
 * type, socket). Every path returns TCX_NEXT (TC_ACT_UNSPEC), which lets
 * later TCX programs (or cls_bpf filters) run, except a packet of a
 * connection judged DROPPED or of a redirect without a proxy socket:
 * TCX_DROP (TC_ACT_SHOT). Truncated or malformed packets are passed
 * untouched and produce no event and no entry.
 */
/* Kernel and libbpf headers are not ours to pad: -Wpadded covers flow.h. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#pragma clang diagnostic pop

#include "flow.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_NONE_ 59
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132

/* IPv6 extension headers followed before giving up (no event then). */
#define MAX_IPV6_EXT 8

/* Unused globals that put the shared types into BTF for bpf2go -type. */
const struct flow_event *unused_flow_event __attribute__((unused));
const enum flow_kind *unused_flow_kind __attribute__((unused));
const enum flow_hook *unused_flow_hook __attribute__((unused));
const enum flow_state *unused_flow_state __attribute__((unused));
const enum flow_stat *unused_flow_stat __attribute__((unused));
const enum flow_verdict *unused_flow_verdict __attribute__((unused));
const enum drop_reason *unused_drop_reason __attribute__((unused));
const struct policy_key *unused_policy_key __attribute__((unused));
const struct policy_value *unused_policy_value __attribute__((unused));
const struct policy_enforce *unused_policy_enforce __attribute__((unused));
const enum policy_enforce_flag *unused_policy_enforce_flag __attribute__((unused));
const struct ipcache_key *unused_ipcache_key __attribute__((unused));
const struct policy_state *unused_policy_state __attribute__((unused));
const struct policy_fast_bucket *unused_policy_fast_bucket __attribute__((unused));
const enum flow_proxy *unused_flow_proxy __attribute__((unused));
const enum proxy_mark *unused_proxy_mark __attribute__((unused));
const struct redirect_key *unused_redirect_key __attribute__((unused));
const struct redirect_value *unused_redirect_value __attribute__((unused));
const struct host_mac_value *unused_host_mac_value __attribute__((unused));
const enum redirect_stat *unused_redirect_stat __attribute__((unused));
const enum redirect_flag *unused_redirect_flag __attribute__((unused));

/* Set at load time from Config.ReportInterval. */
volatile const __u64 report_interval_ns = 5000000000ULL;

/* Default size; the loader overrides max_entries from Config. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} flows SEC(".maps");

/*
 * The policy maps are pinned by name under the loader's PinPath and adopted
 * by the next Load, so a restarted collector judges with the policy in
 * force. Sizes are limits: every policy map allocates on use. Lookups are
 * O(1) in the number of rules: exact-match hashes for the common keys, the
 * LPM tries only for what a hash cannot hold (port ranges, CIDRs shorter
 * than a host), skipped while they hold nothing for the endpoint.
 */
struct policy_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
};

struct policy_range_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
};

struct ipcache_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ipcache_key);
	__type(value, __u32);
};

struct ipcache_lpm_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ipcache_key);
	__type(value, __u32);
};

struct enforce_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct policy_enforce);
};

/*
 * local_ep: the addresses of the local endpoints whose ingress policy is
 * judged (host entries; key as the ipcache hash's), value the endpoint id
 * (host-side ifindex, host order). A connection a local pod starts towards
 * one of them is judged by that endpoint's ingress policy already at the
 * source's hook, and dropped there when it denies: before the bridge and
 * the destination's veth, as Cilium's local delivery does. What it allows
 * is judged again, the usual way, at the destination's hook.
 */
struct local_ep_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct ipcache_key);
	__type(value, __u32);
};

/* Preallocated (one cache line per bucket, 2 MiB per copy) and page aligned. */
struct policy_fast_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, POLICY_FAST_BUCKETS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct policy_fast_bucket);
};

/* Slot r & 1 holds revision r (see flow.h). */
struct policy_map policy_0 SEC(".maps");
struct policy_map policy_1 SEC(".maps");
struct policy_range_map policy_range_0 SEC(".maps");
struct policy_range_map policy_range_1 SEC(".maps");
struct ipcache_map ipcache_0 SEC(".maps");
struct ipcache_map ipcache_1 SEC(".maps");
struct ipcache_lpm_map ipcache_lpm_0 SEC(".maps");
struct ipcache_lpm_map ipcache_lpm_1 SEC(".maps");
struct enforce_map enforce_0 SEC(".maps");
struct enforce_map enforce_1 SEC(".maps");
struct policy_fast_map policy_fast_0 SEC(".maps");
struct policy_fast_map policy_fast_1 SEC(".maps");
struct local_ep_map local_ep_0 SEC(".maps");
struct local_ep_map local_ep_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct policy_state);
} policy_rev SEC(".maps");

/*
 * The redirect maps are pinned by name and adopted like the policy maps.
 * redirect: see flow.h; written whole by SetRedirects (entries added
 * before stale ones are deleted). host_mac: every attached interface's own
 * MAC, written by AttachInterface.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct redirect_key);
	__type(value, struct redirect_value);
} redirect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct host_mac_value);
} host_mac SEC(".maps");

/* enum redirect_stat counters, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REDIRECT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} redirect_stats SEC(".maps");

#define IDENTITY_WORLD 2

/* What the parser extracts from one packet. */
struct packet {
	struct flow_key key; /* in packet order until normalised */
	__u16 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 responder_sent; /* SYN-ACK or echo reply: the sender is the responder */
	__u8 pad[3];
};

/*
 * Wire headers, declared here rather than taken from vmlinux.h: those carry
 * preserve_access_index (CO-RE relocations, bitfields) that direct packet
 * access neither needs nor wants. Only the fields read are named.
 */
struct eth_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__u32 saddr;
	__u32 daddr;
};

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u64 saddr[2];
	__u64 daddr[2];
};

struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 len;
	__be16 frag_off; /* fragment header only */
};

struct tcp_hdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_ns; /* data offset << 4 | NS */
	__u8 flags;   /* FIN .. CWR */
	__be16 window;
	__be16 check;
	__be16 urg_ptr;
};

struct icmp_echo_hdr {
	__u8 type;
	__u8 code;
	__u16 csum;
	__be16 id;
	__u16 seq;
};

/* Big enough for any header hdr() is asked for. */
union hdr_buf {
	struct ipv6_hdr ip6;
	struct ipv4_hdr ip4;
	struct tcp_hdr tcp;
	__u8 bytes[40];
};

/*
 * Tests only: take the bpf_skb_load_bytes path of hdr() for every header,
 * the path of headers outside the linear data, which PROG_TEST_RUN cannot
 * build. Read-only data: the verifier prunes the branch it disables.
 */
volatile const __u8 load_bytes_only = 0;

/*
 * hdr returns a pointer to len bytes at offset off of the packet, like the
 * kernel's skb_header_pointer: into the packet itself when they are in its
 * linear data (the common case, no helper call), else copied into buf with
 * bpf_skb_load_bytes (headers in paged data: the packet is never pulled or
 * otherwise changed). NULL when the packet is shorter than off + len.
 */
static __always_inline void *hdr(struct __sk_buff *skb, __u32 off, __u32 len, union hdr_buf *buf)
{
	void *ptr = (void *)(long)skb->data + off;

	if (!load_bytes_only && ptr + len <= (void *)(long)skb->data_end)
		return ptr;
	if (bpf_skb_load_bytes(skb, off, buf, len))
		return NULL;
	return buf;
}

/* Returns 0 when p holds an L4 flow, <0 when the packet must be ignored. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, __u8 proto,
				    struct packet *p, union hdr_buf *buf)
{
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcp_hdr *th = hdr(skb, off, sizeof(*th), buf);

		if (!th || th->doff_ns < (5 << 4))
			return -1;
		p->key.sport = bpf_ntohs(th->source);
		p->key.dport = bpf_ntohs(th->dest);
		p->tcp_flags = th->flags | ((__u16)(th->doff_ns & 1) << 8);
		p->responder_sent = (p->tcp_flags & 0x12) == 0x12;
		return 0;
	}
	case IPPROTO_UDP:
	case IPPROTO_SCTP_: {
		/* UDP and SCTP both start with source and destination ports. */
		__be16 *ports;

		if (proto == IPPROTO_UDP)
			ports = hdr(skb, off, 8, buf);
		else
			ports = hdr(skb, off, 4, buf);
		if (!ports)
			return -1;
		p->key.sport = bpf_ntohs(ports[0]);
		p->key.dport = bpf_ntohs(ports[1]);
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_: {
		struct icmp_echo_hdr *ih = hdr(skb, off, sizeof(*ih), buf);
		__u8 req = proto == IPPROTO_ICMP ? 8 : 128;
		__u8 rep = proto == IPPROTO_ICMP ? 0 : 129;
		__u8 type, code;

		if (!ih)
			return -1;
		type = ih->type;
		code = ih->code;
		p->icmp_type = type;
		p->icmp_code = code;
		if (type == req || type == rep) {
			p->key.sport = bpf_ntohs(ih->id);
			p->responder_sent = type == rep;
		} else {
			p->key.sport = ((__u16)type << 8) | code;
		}
		p->key.dport = 0;
		return 0;
	}
	default:
		/* Other protocols are tracked by address pair only. */
		return 0;
	}
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off, struct packet *p,
				      union hdr_buf *buf)
{
	struct ipv4_hdr *ih = hdr(skb, off, sizeof(*ih), buf);
	__u32 hlen;
	__u8 proto;

	if (!ih)
		return -1;
	if ((ih->ver_ihl >> 4) != 4 || (ih->ver_ihl & 0xf) < 5)
		return -1;
	hlen = (ih->ver_ihl & 0xf) * 4;
	if (off + hlen > skb->len)
		return -1;
	/* Non-first fragments carry no L4 header: not counted (documented). */
	if (ih->frag_off & bpf_htons(0x1fff))
		return -1;
	proto = ih->protocol;
	p->key.family = 4;
	p->key.proto = proto;
	*(__u32 *)p->key.saddr = ih->saddr;
	*(__u32 *)p->key.daddr = ih->daddr;
	return parse_l4(skb, off + hlen, proto, p, buf);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off, struct packet *p,
				      union hdr_buf *buf)
{
	struct ipv6_hdr *ih = hdr(skb, off, sizeof(*ih), buf);
	__u64 *sa = (__u64 *)p->key.saddr, *da = (__u64 *)p->key.daddr;
	__u8 nexthdr;
	int i;

	if (!ih)
		return -1;
	if ((ih->ver_tc_flow & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000))
		return -1;
	p->key.family = 6;
	sa[0] = ih->saddr[0];
	sa[1] = ih->saddr[1];
	da[0] = ih->daddr[0];
	da[1] = ih->daddr[1];
	nexthdr = ih->nexthdr;
	off += sizeof(*ih);

	for (i = 0; i < MAX_IPV6_EXT; i++) {
		struct ipv6_ext_hdr *eh;

		switch (nexthdr) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
		case IPPROTO_FRAGMENT_:
		case IPPROTO_AH_:
			break;
		case IPPROTO_NONE_:
			return -1;
		default:
			p->key.proto = nexthdr;
			return parse_l4(skb, off, nexthdr, p, buf);
		}
		eh = hdr(skb, off, sizeof(*eh), buf);
		if (!eh)
			return -1;
		if (nexthdr == IPPROTO_FRAGMENT_) {
			if (eh->frag_off & bpf_htons(0xfff8))
				return -1; /* non-first fragment: no L4 header */
			off += 8;
		} else if (nexthdr == IPPROTO_AH_) {
			off += ((__u32)eh->len + 2) * 4;
		} else {
			off += ((__u32)eh->len + 1) * 8;
		}
		nexthdr = eh->nexthdr;
	}
	return -1; /* chain longer than MAX_IPV6_EXT */
}

/* Returns 0 when p holds a flow key in packet order. */
static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	union hdr_buf buf;
	__be16 *ethertype;
	__be16 proto;
	__u32 off = ETH_HLEN;
	int i;

	ethertype = hdr(skb, 12, sizeof(*ethertype), &buf);
	if (!ethertype)
		return -1;
	proto = *ethertype;
	/* Up to two VLAN tags (802.1ad + 802.1Q) left in the frame. */
	for (i = 0; i < 2; i++) {
		struct eth_vlan_hdr *vh;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = hdr(skb, off, sizeof(*vh), &buf);
		if (!vh)
			return -1;
		proto = vh->proto;
		off += 4;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, off, p, &buf);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, off, p, &buf);
	return -1;
}

/*
 * normalise orders the key so that both directions of a connection share
 * it; returns 1 when the packet travels key dst -> src.
 */
static __always_inline int normalise(struct flow_key *k)
{
	__u64 *s = (__u64 *)k->saddr, *d = (__u64 *)k->daddr;
	__u64 s0 = bpf_be64_to_cpu(s[0]), d0 = bpf_be64_to_cpu(d[0]);
	__u64 s1 = bpf_be64_to_cpu(s[1]), d1 = bpf_be64_to_cpu(d[1]);
	int swap;

	if (s0 != d0)
		swap = s0 > d0;
	else if (s1 != d1)
		swap = s1 > d1;
	else
		swap = k->sport > k->dport;
	if (!swap)
		return 0;

	__u64 t0 = s[0], t1 = s[1];
	s[0] = d[0];
	s[1] = d[1];
	d[0] = t0;
	d[1] = t1;
	/* ICMP keeps its identifier in sport whatever the direction. */
	if (k->proto != IPPROTO_ICMP && k->proto != IPPROTO_ICMPV6_) {
		__u16 t = k->sport;
		k->sport = k->dport;
		k->dport = t;
	}
	return 1;
}

static __always_inline __u32 state_bits(__u16 flags, int rev)
{
	__u32 st = 0;

	if (flags & 0x02)
		st |= (flags & 0x10) ? FLOW_STATE_SYNACK : FLOW_STATE_SYN;
	if (flags & 0x01)
		st |= rev ? FLOW_STATE_FIN_REV : FLOW_STATE_FIN_FWD;
	if (flags & 0x04)
		st |= FLOW_STATE_RST;
	return st;
}

static __always_inline void emit(const struct flow_key *k, struct flow_value *v,
				 __u8 kind, __u64 now)
{
	struct flow_event *e = reserve_event();
	int f = v->src_is_initiator ? 0 : 1;

	if (!e)
		return;
	e->ts = now;
	e->first_seen = v->first_seen;
	e->last_seen = v->last_seen;
	e->packets_fwd = v->packets[f];
	e->bytes_fwd = v->bytes[f];
	e->packets_rev = v->packets[f ^ 1];
	e->bytes_rev = v->bytes[f ^ 1];
	e->cgroup_id = 0;
	__builtin_memcpy(e->saddr, k->saddr, 16);
	__builtin_memcpy(e->daddr, k->daddr, 16);
	e->ifindex = v->observed_at ? v->observed_at : k->ifindex;
	e->pid = 0;
	e->sport = k->sport;
	e->dport = k->dport;
	e->tcp_flags = v->tcp_flags;
	e->kind = kind;
	e->family = k->family;
	e->proto = k->proto;
	e->hook = v->hook;
	e->src_is_initiator = v->src_is_initiator;
	e->icmp_type = v->icmp_type;
	e->icmp_code = v->icmp_code;
	e->verdict = v->verdict;
	e->drop_reason = v->drop_reason;
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	e->policy_set = v->policy_set;
	e->pad = 0;
	e->revision = v->revision;
	submit_event(e);
}

/* A TCP connection that saw FIN both ways or an RST is over. */
static __always_inline int tcp_closed(__u32 state)
{
	return (state & FLOW_STATE_RST) ||
	       (state & (FLOW_STATE_FIN_FWD | FLOW_STATE_FIN_REV)) ==
		       (FLOW_STATE_FIN_FWD | FLOW_STATE_FIN_REV);
}

/* active_revision reads the policy revision in force: once per packet. */
static __always_inline __u64 active_revision(void)
{
	__u32 zero = 0;
	struct policy_state *st = bpf_map_lookup_elem(&policy_rev, &zero);

	return st ? *(volatile __u64 *)&st->revision : 0;
}

#define SLOT_LOOKUP(slot, m, key) \
	((slot) ? bpf_map_lookup_elem(&m##_1, (key)) : bpf_map_lookup_elem(&m##_0, (key)))

/*
 * policy_fast_hash is the bucket of a slot: its key bytes (the first two
 * words, family, addr) mixed as little-endian words; datapath's
 * policyFastHash is the same function.
 */
static __always_inline __u32 fast_mix(__u32 h, __u32 w)
{
	h = (h ^ w) * 0x9e3779b1;
	return h ^ (h >> 15);
}

static __always_inline __u32 policy_fast_hash(const struct policy_fast_slot *q)
{
	const __u32 *a = (const __u32 *)q->addr;
	__u32 h = 0;

	h = fast_mix(h, *(const __u32 *)q);
	h = fast_mix(h, *((const __u32 *)q + 1));
	h = fast_mix(h, q->family);
	h = fast_mix(h, a[0]);
	h = fast_mix(h, a[1]);
	h = fast_mix(h, a[2]);
	h = fast_mix(h, a[3]);
	return h & (POLICY_FAST_BUCKETS - 1);
}

static __always_inline int fast_match(const struct policy_fast_slot *s, const struct policy_fast_slot *q)
{
	const __u64 *sa = (const __u64 *)s->addr, *qa = (const __u64 *)q->addr;

	return *(const __u64 *)s == *(const __u64 *)q && s->family == q->family &&
	       sa[0] == qa[0] && sa[1] == qa[1];
}

/*
 * policy_fast_lookup copies the value of q's slot into pv and returns 1, or
 * returns 0 on a miss with *spill set from the bucket (see flow.h).
 */
static __always_inline int policy_fast_lookup(const struct policy_fast_slot *q, __u32 slot,
					      struct policy_value *pv, __u8 *spill)
{
	__u32 i = policy_fast_hash(q);
	struct policy_fast_bucket *b = SLOT_LOOKUP(slot, policy_fast, &i);
	struct policy_fast_slot *s;

	*spill = 0;
	if (!b)
		return 0;
	s = &b->slot[0];
	*spill = s->spill;
	if (!fast_match(s, q)) {
		s = &b->slot[1];
		if (!fast_match(s, q))
			return 0;
	}
	pv->action = s->action;
	pv->policy_set = s->policy_set;
	return 1;
}

/* policy_lookup copies the entry of pk's map hit into pv; 0 on a miss. */
static __always_inline int policy_lookup(void *map_0, void *map_1, struct policy_key *pk, __u32 slot,
					 struct policy_value *pv)
{
	struct policy_value *hit = bpf_map_lookup_elem(slot ? map_1 : map_0, pk);

	if (!hit)
		return 0;
	*pv = *hit;
	return 1;
}

/*
 * policy_probe does one identity's part of the lookup order of
 * enforcer/compile: the exact port (policy_fast, the hash only for a key
 * its bucket could not hold), the port ranges, every port of the protocol,
 * every protocol, each only when flags say the endpoint has such entries.
 * pk's endpoint, identity and direction are set, and so are q's endpoint,
 * direction, proto and dport. Returns 1 with the hit in pv.
 */
static __always_inline int policy_probe(struct policy_key *pk, struct policy_fast_slot *q, __u8 proto,
					__u16 port, __u32 slot, __u8 flags, struct policy_value *pv)
{
	__u8 spill;

	if (proto) {
		q->family = 0;
		__builtin_memset(q->addr, 0, sizeof(q->addr));
		*(__be32 *)q->addr = pk->identity;
		if (policy_fast_lookup(q, slot, pv, &spill))
			return 1;
		pk->prefixlen = 96;
		pk->proto = proto;
		pk->dport = bpf_htons(port);
		if (spill && policy_lookup(&policy_0, &policy_1, pk, slot, pv))
			return 1;
		if ((flags & POLICY_ENFORCE_RANGES) && policy_lookup(&policy_range_0, &policy_range_1, pk, slot, pv))
			return 1;
		if (flags & POLICY_ENFORCE_ANY_PORT) {
			pk->prefixlen = 80;
			pk->dport = 0;
			if (policy_lookup(&policy_0, &policy_1, pk, slot, pv))
				return 1;
		}
	}
	if (!(flags & POLICY_ENFORCE_ANY_PROTO))
		return 0;
	pk->prefixlen = 72;
	pk->proto = 0;
	pk->dport = 0;
	return policy_lookup(&policy_0, &policy_1, pk, slot, pv);
}

#include "host_policy.h"

/*
 * is_ndp says whether the connection is IPv6 neighbour discovery (router
 * and neighbour solicitation and advertisement, redirect: ICMPv6 133-137).
 * Like ARP for IPv4, it is link-layer plumbing that policy never judges, as
 * in Cilium: dropping it would cut IPv6 between pods that policy allows.
 */
static __always_inline int is_ndp(const struct flow_key *k, const struct flow_value *v)
{
	return k->proto == IPPROTO_ICMPV6_ && v->icmp_type >= 133 && v->icmp_type <= 137;
}

/*
 * judge writes the verdict of revision rev into v for the connection keyed k
 * (v's src_is_initiator, hook and icmp_type already set), following the
 * lookup order of enforcer/compile. The local endpoint is the interface;
 * the peer is the side beyond it. Endpoints without a policy_enforce entry
 * (selected by no policy) cost one hash lookup; revision 0 costs nothing.
 * A host peer on an exact port usually costs one policy_fast access more
 * (its peer slot), whatever the number of rules.
 */
static __always_inline void judge(const struct flow_key *k, struct flow_value *v, __u64 rev, const int host)
{
	struct policy_enforce *enf;
	struct policy_value pv = {};
	struct policy_fast_slot q = {};
	struct ipcache_key ik = {};
	struct policy_key pk;
	__u32 ep = k->ifindex, slot = rev & 1, id, *idp;
	__u16 port, reason;
	__u8 dir, deny, flags, spill;
	int peer_is_src, hit = 0;

	v->revision = rev;
	v->verdict = FLOW_VERDICT_FORWARDED;
	v->drop_reason = 0;
	v->policy_set = 0;
	if (!rev || is_ndp(k, v))
		return;
	enf = SLOT_LOOKUP(slot, enforce, &ep);
	if (!enf)
		return;

	/* The initiator's packets enter the host here: the pod initiated. */
	if (v->hook == FLOW_HOOK_INGRESS) {
		dir = POLICY_DIR_EGRESS;
		peer_is_src = !v->src_is_initiator; /* the peer responds */
	} else {
		dir = POLICY_DIR_INGRESS;
		peer_is_src = v->src_is_initiator; /* the peer initiates */
	}
	/* The port judged is the responder's; ICMP: the request's type. */
	port = v->src_is_initiator ? k->dport : k->sport;
	if (k->proto == IPPROTO_ICMP || k->proto == IPPROTO_ICMPV6_) {
		port = v->icmp_type;
		if (k->proto == IPPROTO_ICMP && port == 0)
			port = 8;
		else if (k->proto == IPPROTO_ICMPV6_ && port == 129)
			port = 128;
	}
	flags = enf->flags;
	if (host && !host_device_turn(k, slot, &dir, &peer_is_src))
		return;

	q.endpoint_id = bpf_htonl(ep);
	q.direction = dir;
	q.proto = k->proto;
	q.dport = bpf_htons(port);
	if (peer_is_src)
		__builtin_memcpy(q.addr, k->saddr, 16);
	else
		__builtin_memcpy(q.addr, k->daddr, 16);
	/* A host peer's slot is the first probe's answer: nothing else to do. */
	if (k->proto && (flags & POLICY_ENFORCE_FAST_PEERS)) {
		q.family = k->family;
		hit = policy_fast_lookup(&q, slot, &pv, &spill);
	}

	if (!hit) {
		/* Host entries in the hash; the trie only for shorter prefixes. */
		ik.prefixlen = 32 + (k->family == 4 ? 32 : 128);
		ik.family = k->family;
		__builtin_memcpy(ik.addr, q.addr, 16);
		idp = SLOT_LOOKUP(slot, ipcache, &ik);
		if (!idp && (flags & POLICY_ENFORCE_IPCACHE_LPM))
			idp = SLOT_LOOKUP(slot, ipcache_lpm, &ik);
		id = idp ? *idp : IDENTITY_WORLD;

		pk.endpoint_id = q.endpoint_id;
		pk.direction = dir;
		if (id && (flags & POLICY_ENFORCE_BY_IDENTITY)) {
			pk.identity = bpf_htonl(id);
			hit = policy_probe(&pk, &q, k->proto, port, slot, flags, &pv);
		}
		if (!hit && (flags & POLICY_ENFORCE_ANY_IDENTITY)) {
			pk.identity = 0;
			hit = policy_probe(&pk, &q, k->proto, port, slot, flags, &pv);
		}
	}
	if (hit) {
		v->policy_set = pv.policy_set;
		if (pv.action != POLICY_ACTION_DENY)
			return;
		reason = DROP_POLICY_DENY;
	} else {
		deny = dir == POLICY_DIR_INGRESS ? enf->ingress : enf->egress;
		if (!deny)
			return;
		reason = DROP_POLICY_DENIED;
	}
	v->drop_reason = reason;
	v->verdict = enf->audit ? FLOW_VERDICT_AUDIT : FLOW_VERDICT_DROPPED;
}

/*
 * judge_at_destination judges, under revision rev, the connection keyed k
 * that the local endpoint k->ifindex starts (v: its entry, judged
 * FORWARDED for its egress) by the ingress policy of its destination when
 * that is a local endpoint whose ingress is judged (local_ep). When that
 * policy drops it, v becomes the destination's record (observed_at, hook,
 * verdict, reason, policy_set) and the packets are dropped here, at the
 * source. Audit and allow leave v alone: the destination's hook judges
 * and reports those itself.
 */
static __always_inline void judge_at_destination(const struct flow_key *k, struct flow_value *v, __u64 rev)
{
	struct ipcache_key ik = {};
	struct flow_value dv = {};
	struct flow_key dk = *k;
	__u32 *ep;

	ik.prefixlen = 32 + (k->family == 4 ? 32 : 128);
	ik.family = k->family;
	__builtin_memcpy(ik.addr, v->src_is_initiator ? k->daddr : k->saddr, 16);
	ep = SLOT_LOOKUP(rev & 1, local_ep, &ik);
	if (!ep || *ep == k->ifindex)
		return;
	dk.ifindex = *ep;
	dv.src_is_initiator = v->src_is_initiator;
	dv.hook = FLOW_HOOK_EGRESS; /* the initiator's packets leave the host there */
	dv.icmp_type = v->icmp_type;
	judge(&dk, &dv, rev, 0); /* a local pod */
	if (dv.verdict != FLOW_VERDICT_DROPPED)
		return;
	v->observed_at = dk.ifindex;
	v->hook = FLOW_HOOK_EGRESS;
	v->verdict = dv.verdict;
	v->drop_reason = dv.drop_reason;
	v->policy_set = dv.policy_set;
}

/*
 * rejudge writes the verdict of revision rev into v, a connection's entry
 * at interface k->ifindex (src_is_initiator, hook, icmp_type and
 * observed_at set): an entry that is a local destination's record stays
 * one while that destination's ingress drops the connection, else it is
 * the source's own again, judged for its egress.
 */
static __always_inline void rejudge(const struct flow_key *k, struct flow_value *v, __u64 rev, const int host)
{
	if (v->observed_at) {
		struct flow_key dk = *k;

		dk.ifindex = v->observed_at;
		judge(&dk, v, rev, 0); /* a local pod */
		if (v->verdict == FLOW_VERDICT_DROPPED)
			return;
		v->observed_at = 0;
		v->hook = FLOW_HOOK_INGRESS;
	}
	judge(k, v, rev, host);
}

static __always_inline void redirect_stat_inc(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&redirect_stats, &slot);

	if (c)
		__sync_fetch_and_add(c, 1);
}

/*
 * The redirect's functions are global (__noinline, not static): the
 * verifier checks each once, not once per path of the policy judgement
 * that leads to them.
 */

/*
 * redirect_port returns the proxy port (network order) of the redirect of
 * a connection keyed k whose initiator sent the packet (rev: it travels
 * key dst -> src): the EGRESS entry of the endpoint it entered by, else
 * the INGRESS entry of its destination address; 0 when none matches.
 */
__noinline int redirect_port(const struct flow_key *k, int rev)
{
	struct redirect_key rk = {};
	struct redirect_value *rv;

	if (!k)
		return 0;
	rk.endpoint_id = k->ifindex;
	rk.direction = POLICY_DIR_EGRESS;
	rk.proto = k->proto;
	rk.dport = bpf_htons(rev ? k->sport : k->dport);
	rv = bpf_map_lookup_elem(&redirect, &rk);
	if (!rv) {
		rk.endpoint_id = 0;
		rk.direction = POLICY_DIR_INGRESS;
		rk.family = k->family;
		__builtin_memcpy(rk.addr, rev ? k->saddr : k->daddr, 16);
		rv = bpf_map_lookup_elem(&redirect, &rk);
	}
	return rv ? rv->proxy_port : 0;
}

/*
 * bypass_verdict is the verdict of a connection keyed k (src_is_initiator
 * as its entry's, judged FORWARDED or AUDIT), seen at the destination's TC
 * egress hook from its initiator and not the proxy's own, when its
 * destination (address, port) has an INGRESS redirect for policy: DROPPED (AUDIT when
 * the endpoint is in audit mode under revision rev), since no hook steered
 * it to the proxy; 0 when it has none.
 */
__noinline int bypass_verdict(const struct flow_key *k, int src_is_initiator, __u64 rev)
{
	struct redirect_key rk = {};
	struct redirect_value *rv;
	struct policy_enforce *enf;
	__u32 ep;

	if (!k || (k->proto != IPPROTO_TCP && k->proto != IPPROTO_UDP))
		return 0;
	rk.direction = POLICY_DIR_INGRESS;
	rk.proto = k->proto;
	rk.family = k->family;
	if (src_is_initiator) {
		rk.dport = bpf_htons(k->dport);
		__builtin_memcpy(rk.addr, k->daddr, 16);
	} else {
		rk.dport = bpf_htons(k->sport);
		__builtin_memcpy(rk.addr, k->saddr, 16);
	}
	rv = bpf_map_lookup_elem(&redirect, &rk);
	if (!rv || !(rv->flags & REDIRECT_FLAG_POLICY))
		return 0;
	redirect_stat_inc(REDIRECT_STAT_BYPASS);
	ep = k->ifindex;
	enf = SLOT_LOOKUP(rev & 1, enforce, &ep);
	return enf && enf->audit ? FLOW_VERDICT_AUDIT : FLOW_VERDICT_DROPPED;
}

/*
 * set_bypass gives a connection's entry v a bypass verdict bv (DROPPED or
 * AUDIT, POLICY_DENIED, no deciding policy); bv 0 leaves it as it is.
 */
static __always_inline void set_bypass(struct flow_value *v, int bv)
{
	if (!bv)
		return;
	v->verdict = bv;
	v->drop_reason = DROP_POLICY_DENIED;
	v->policy_set = 0;
}

/*
 * check_bypass applies bypass_verdict to a connection's entry v at the
 * destination's egress hook (hook: where the packet is seen; mark: its
 * skb->mark), unless it is the proxy's upstream or already dropped.
 */
static __always_inline void check_bypass(const struct flow_key *k, struct flow_value *v, int hook, __u32 mark, __u64 rev)
{
	if (hook != FLOW_HOOK_EGRESS || v->hook != FLOW_HOOK_EGRESS || v->proxy != FLOW_PROXY_NONE ||
	    v->verdict == FLOW_VERDICT_DROPPED || (mark & PROXY_MARK_MASK) == PROXY_MARK_UPSTREAM)
		return;
	set_bypass(v, bypass_verdict(k, v->src_is_initiator, rev));
}

/*
 * egress_bypass_verdict is the verdict of a TCP connection keyed k
 * (src_is_initiator as its entry's), which entered the host at its
 * initiator's interface without going to the proxy, when its initiator's
 * endpoint has an EGRESS redirect of its destination port: DROPPED (AUDIT
 * when the endpoint is in audit mode under revision rev), since the proxy
 * cannot take an established connection over and its policy would be
 * escaped; 0 when it has none.
 */
__noinline int egress_bypass_verdict(const struct flow_key *k, int src_is_initiator, __u64 rev)
{
	struct redirect_key rk = {};
	struct policy_enforce *enf;
	__u32 ep;

	if (!k || k->proto != IPPROTO_TCP)
		return 0;
	rk.endpoint_id = k->ifindex;
	rk.direction = POLICY_DIR_EGRESS;
	rk.proto = k->proto;
	rk.dport = bpf_htons(src_is_initiator ? k->dport : k->sport);
	if (!bpf_map_lookup_elem(&redirect, &rk))
		return 0;
	redirect_stat_inc(REDIRECT_STAT_BYPASS);
	ep = k->ifindex;
	enf = SLOT_LOOKUP(rev & 1, enforce, &ep);
	return enf && enf->audit ? FLOW_VERDICT_AUDIT : FLOW_VERDICT_DROPPED;
}

/*
 * check_egress_bypass applies egress_bypass_verdict to a TCP connection's
 * entry v whose initiator entered the host at this interface (whichever
 * way the packet that re-judges it goes), unless the proxy has it (or it
 * is the proxy's upstream) or it is already dropped: an established
 * connection to a port redirected since ends, as a SYN would have gone to
 * the proxy.
 */
static __always_inline void check_egress_bypass(const struct flow_key *k, struct flow_value *v, __u32 mark, __u64 rev)
{
	if (k->proto != IPPROTO_TCP || v->hook != FLOW_HOOK_INGRESS || v->proxy != FLOW_PROXY_NONE ||
	    v->verdict == FLOW_VERDICT_DROPPED || (mark & PROXY_MARK_MASK) == PROXY_MARK_UPSTREAM)
		return;
	set_bypass(v, egress_bypass_verdict(k, v->src_is_initiator, rev));
}

/*
 * proxy_role is the FLOW_PROXY_* of a new connection whose first packet is
 * p, seen at hook with mark and judged verdict (see the header comment).
 */
__noinline int proxy_role(const struct packet *p, int rev, int hook, __u32 mark, int verdict)
{
	if (!p || verdict == FLOW_VERDICT_DROPPED || p->responder_sent)
		return FLOW_PROXY_NONE;
	if (p->key.proto != IPPROTO_TCP && p->key.proto != IPPROTO_UDP)
		return FLOW_PROXY_NONE;
	if ((mark & PROXY_MARK_MASK) == PROXY_MARK_UPSTREAM) {
		if (hook != FLOW_HOOK_EGRESS)
			return FLOW_PROXY_NONE;
		redirect_stat_inc(REDIRECT_STAT_UPSTREAM);
		return FLOW_PROXY_UPSTREAM;
	}
	/* Only a connection's start: an established one is never moved. */
	if (hook != FLOW_HOOK_INGRESS || (p->key.proto == IPPROTO_TCP && (p->tcp_flags & 0x16) != 0x02))
		return FLOW_PROXY_NONE;
	if (!redirect_port(&p->key, rev))
		return FLOW_PROXY_NONE;
	redirect_stat_inc(REDIRECT_STAT_CONNECTIONS);
	return FLOW_PROXY_REDIRECT;
}

/*
 * take_over_udp reports whether the datagram p (rev; seen at hook with mark,
 * sent by the flow's initiator or not) of an existing UDP flow that is not
 * DROPPED and has no proxy role moves the flow to the proxy: its initiator's,
 * entering the host, of a port redirected since the flow began. Unlike a
 * TCP connection, a UDP flow carries no state the proxy would miss, and one
 * that went on direct would escape the proxy's policy (a resolver's
 * long-lived socket and DNS rules); the removal's counterpart is
 * proxy_action's.
 */
__noinline int take_over_udp(const struct packet *p, int rev, int hook, __u32 mark, int from_initiator)
{
	if (!p || !from_initiator || hook != FLOW_HOOK_INGRESS || (mark & PROXY_MARK_MASK) == PROXY_MARK_UPSTREAM)
		return 0;
	if (!redirect_port(&p->key, rev))
		return 0;
	redirect_stat_inc(REDIRECT_STAT_CONNECTIONS);
	return 1;
}

/*
 * to_host makes the packet the host's: destination MAC the interface's
 * own, type PACKET_HOST, mark PROXY_MARK_TO_PROXY (policy routing: local)
 * with port (host order; 0: none) in its upper 16 bits for proxy_assign.
 */
static __always_inline void to_host(struct __sk_buff *skb, struct host_mac_value *m, __u32 port)
{
	if (m) {
		bpf_skb_store_bytes(skb, 0, m->addr, 6, 0);
		bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
	}
	skb->mark = (skb->mark & 0xffff & ~(__u32)PROXY_MARK_MASK) | PROXY_MARK_TO_PROXY | (port << 16);
}

/*
 * assign_proxy gives the packet to the proxy's socket at port (network
 * order) on 127.0.0.1 or ::1: its listener for TCP. Returns 0, or -1 when
 * there is none.
 */
static __always_inline int assign_proxy(struct __sk_buff *skb, const struct flow_key *k, __be16 port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;
	long err;

	if (k->family == 4) {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = port;
		size = sizeof(t.ipv4);
	} else {
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = port;
		size = sizeof(t.ipv6);
	}
	if (k->proto == IPPROTO_TCP)
		sk = bpf_sk_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_udp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return -1;
	if (k->proto == IPPROTO_TCP && sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return -1;
	}
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	return err ? -1 : 0;
}

/* What steer asks of the caller. */
enum steer_result {
	STEER_PASS = 0,   /* TCX_NEXT */
	STEER_DROP = 1,   /* TCX_DROP: no proxy socket */
};

/*
 * steer makes a packet seen at a TC ingress hook the proxy's: with port
 * (network order, not 0) the first packet of a REDIRECT connection (a TCP
 * SYN or a UDP datagram), given to the proxy's socket at port here or, on
 * a bridge port, by proxy_assign at the bridge; with port 0 a later packet
 * of the initiator, or an UPSTREAM connection's reply. Returns STEER_PASS
 * or STEER_DROP (no proxy socket).
 */
__noinline int steer(struct __sk_buff *skb, const struct flow_key *k, int port)
{
	struct host_mac_value *m;
	__u32 idx;

	if (!skb || !k)
		return STEER_PASS;
	idx = skb->ifindex;
	m = bpf_map_lookup_elem(&host_mac, &idx);
	if (port) {
		if (m && m->bridged) {
			/* proxy_assign at the bridge assigns the socket. */
			to_host(skb, m, bpf_ntohs(port));
			return STEER_PASS;
		}
		if (assign_proxy(skb, k, port)) {
			redirect_stat_inc(REDIRECT_STAT_NO_PROXY);
			return STEER_DROP;
		}
	}
	to_host(skb, m, 0);
	return STEER_PASS;
}

/*
 * proxy_action is the TC action for a packet (p, rev, seen at hook, sent
 * by the initiator or not) of a connection that is not DROPPED and whose
 * proxy role is *role (cleared when the redirect is gone).
 */
static __always_inline int proxy_action(struct __sk_buff *skb, const struct packet *p, int rev, __u8 hook,
					__u8 *role, int from_initiator)
{
	int port = 0;

	if (hook != FLOW_HOOK_INGRESS)
		return TCX_NEXT;
	if (!(*role == FLOW_PROXY_REDIRECT && from_initiator) && !(*role == FLOW_PROXY_UPSTREAM && !from_initiator))
		return TCX_NEXT;
	if (*role == FLOW_PROXY_REDIRECT && (p->key.proto == IPPROTO_UDP || (p->tcp_flags & 0x16) == 0x02)) {
		port = redirect_port(&p->key, rev);
		if (!port) {
			/* Removed before the connection was made: it goes direct. */
			*role = FLOW_PROXY_NONE;
			return TCX_NEXT;
		}
	}
	return steer(skb, &p->key, port) == STEER_DROP ? TCX_DROP : TCX_NEXT;
}

/*
 * start_flow creates the entry of a connection whose first packet is p (or
 * replaces the entry of an ended one, with BPF_ANY), judges it under policy
 * revision prev, gives it its proxy role (into *proxy too), and reports its
 * START. Returns the verdict (> 0), or -1 when the entry was not written.
 */
static __always_inline int start_flow(struct packet *p, int rev, __u8 hook, __u64 len,
				      __u64 now, __u64 update_flags, __u64 prev, __u32 mark, __u8 *proxy, const int host)
{
	struct flow_value nv = {};
	/* The sender of the first packet started the connection, unless that
	 * packet is a SYN-ACK or an echo reply. */
	int sender_initiates = !p->responder_sent;

	nv.first_seen = now;
	nv.last_seen = now;
	nv.last_report = now;
	nv.packets[rev] = 1;
	nv.bytes[rev] = len;
	nv.tcp_flags = p->tcp_flags;
	if (p->key.proto == IPPROTO_TCP)
		nv.state = state_bits(p->tcp_flags, rev);
	nv.src_is_initiator = sender_initiates ? !rev : rev;
	if (sender_initiates)
		nv.hook = hook;
	else
		nv.hook = hook == FLOW_HOOK_INGRESS ? FLOW_HOOK_EGRESS : FLOW_HOOK_INGRESS;
	nv.icmp_type = p->icmp_type;
	nv.icmp_code = p->icmp_code;
	judge(&p->key, &nv, prev, host);
	/* A local pod starts it: its local destination may drop it here. */
	if (hook == FLOW_HOOK_INGRESS && nv.hook == FLOW_HOOK_INGRESS &&
	    nv.verdict == FLOW_VERDICT_FORWARDED && prev)
		judge_at_destination(&p->key, &nv, prev);
	nv.proxy = proxy_role(p, rev, hook, mark, nv.verdict);
	*proxy = nv.proxy;
	if (!host) { /* host devices see the host's own connections only */
		check_bypass(&p->key, &nv, hook, mark, prev);
		/* A TCP connection first seen past its SYN (it predates the
		 * datapath, or its entry was lost) to a redirected egress port:
		 * the proxy cannot take it over. */
		if (nv.proxy == FLOW_PROXY_NONE)
			check_egress_bypass(&p->key, &nv, mark, prev);
	}
	if (bpf_map_update_elem(&flows, &p->key, &nv, update_flags))
		return -1;
	stat_inc(FLOW_STAT_STARTED);
	emit(&p->key, &nv, FLOW_KIND_START, now);
	return nv.verdict;
}

/*
 * The hot path is an existing flow: one map lookup, two atomic adds, one
 * clock read; an event only on a verdict change or a due periodic report.
 */
static __always_inline int handle(struct __sk_buff *skb, __u8 hook, const int host)
{
	struct packet p = {};
	struct flow_value *v;
	__u64 now, len = skb->len, prev, vrev;
	int rev;

	if (parse(skb, &p))
		return TCX_NEXT;
	p.key.ifindex = skb->ifindex;
	rev = normalise(&p.key);
	now = bpf_ktime_get_boot_ns();
	prev = active_revision();

	v = bpf_map_lookup_elem(&flows, &p.key);
	if (!v) {
		__u8 proxy = 0;
		int verdict = start_flow(&p, rev, hook, len, now, BPF_NOEXIST, prev, skb->mark, &proxy, host);

		if (verdict == FLOW_VERDICT_DROPPED)
			return TCX_DROP;
		if (verdict > 0)
			return proxy ? proxy_action(skb, &p, rev, hook, &proxy, !p.responder_sent) : TCX_NEXT;
		/* Another CPU created it first: account there. */
		v = bpf_map_lookup_elem(&flows, &p.key);
		if (!v)
			return TCX_NEXT;
	}

	__u8 kind = 0;
	if (p.key.proto == IPPROTO_TCP) {
		__u32 st = state_bits(p.tcp_flags, rev);
		__u32 vst = v->state;

		/*
		 * A SYN (without ACK or RST) on the tuple of an ended connection
		 * opens a new one (port reuse, e.g. out of TIME_WAIT): report
		 * the old one's End and start afresh, so the two never merge.
		 * The CPU that marks the entry REPLACED does it; a packet another
		 * CPU accounts to the old entry meanwhile is lost with it.
		 */
		if ((p.tcp_flags & 0x16) == 0x02 && tcp_closed(vst) &&
		    !(vst & FLOW_STATE_REPLACED) &&
		    __sync_val_compare_and_swap(&v->state, vst, vst | FLOW_STATE_REPLACED) == vst) {
			__u8 proxy = 0;
			int verdict;

			emit(&p.key, v, FLOW_KIND_END, now);
			stat_inc(FLOW_STAT_ENDED);
			verdict = start_flow(&p, rev, hook, len, now, BPF_ANY, prev, skb->mark, &proxy, host);
			if (verdict == FLOW_VERDICT_DROPPED)
				return TCX_DROP;
			return proxy && verdict > 0 ? proxy_action(skb, &p, rev, hook, &proxy, 1) : TCX_NEXT;
		}

		if (p.tcp_flags & ~v->tcp_flags)
			__sync_fetch_and_or(&v->tcp_flags, p.tcp_flags);
		/* Marked, not reported: the periodic report and the End carry it. */
		if (st & ~vst)
			__sync_fetch_and_or(&v->state, st);
	}

	/*
	 * A new revision re-judges the connection: the CPU that moves the
	 * entry's revision does it (others meanwhile use the previous
	 * revision's verdict), and reports a verdict that changed.
	 */
	vrev = v->revision;
	if (vrev != prev && __sync_val_compare_and_swap(&v->revision, vrev, prev) == vrev) {
		struct flow_value nv = {};

		nv.src_is_initiator = v->src_is_initiator;
		nv.hook = v->hook;
		nv.icmp_type = v->icmp_type;
		nv.observed_at = v->observed_at;
		nv.proxy = v->proxy;
		rejudge(&p.key, &nv, prev, host);
		/* The initiator's packet (it leaves the host here): a direct
		 * connection to a port redirected since ends. */
		if (!host && (!rev) == nv.src_is_initiator)
			check_bypass(&p.key, &nv, hook, skb->mark, prev);
		/* Its endpoint's egress port redirected since: the same. */
		if (!host)
			check_egress_bypass(&p.key, &nv, skb->mark, prev);
		if (nv.verdict != v->verdict || nv.drop_reason != v->drop_reason ||
		    nv.observed_at != v->observed_at)
			kind = FLOW_KIND_STATE;
		v->observed_at = nv.observed_at;
		v->hook = nv.hook;
		v->policy_set = nv.policy_set;
		v->drop_reason = nv.drop_reason;
		v->verdict = nv.verdict;
	}

	__sync_fetch_and_add(&v->packets[rev], 1);
	__sync_fetch_and_add(&v->bytes[rev], len);
	v->last_seen = now;

	if (kind) {
		v->last_report = now;
	} else {
		__u64 last = v->last_report;

		/* Only the CPU that moves last_report reports the period. */
		if (now - last >= report_interval_ns &&
		    __sync_val_compare_and_swap(&v->last_report, last, now) == last)
			kind = FLOW_KIND_PERIODIC;
	}
	if (kind)
		emit(&p.key, v, kind, now);
	if (v->verdict == FLOW_VERDICT_DROPPED)
		return TCX_DROP;
	if (v->proxy)
		return proxy_action(skb, &p, rev, hook, &v->proxy, (!rev) == v->src_is_initiator);
	if (p.key.proto == IPPROTO_UDP && take_over_udp(&p, rev, hook, skb->mark, (!rev) == v->src_is_initiator)) {
		v->proxy = FLOW_PROXY_REDIRECT;
		return proxy_action(skb, &p, rev, hook, &v->proxy, 1);
	}
	return TCX_NEXT;
}

SEC("tc")
int flow_ingress(struct __sk_buff *skb)
{
	return handle(skb, FLOW_HOOK_INGRESS, 0);
}

SEC("tc")
int flow_egress(struct __sk_buff *skb)
{
	return handle(skb, FLOW_HOOK_EGRESS, 0);
}

/*
 * The programs of host devices (host interfaces): the same accounting, and
 * the host endpoint's policy judged from the host's side (host_policy.h).
 * Separate programs, so the pods' programs carry none of it.
 */
SEC("tc")
int flow_host_ingress(struct __sk_buff *skb)
{
	return handle(skb, FLOW_HOOK_INGRESS, 1);
}

SEC("tc")
int flow_host_egress(struct __sk_buff *skb)
{
	return handle(skb, FLOW_HOOK_EGRESS, 1);
}

/*
 * proxy_assign runs at the TC ingress of a bridge whose ports the flow
 * programs watch: a frame a port steered to the proxy (mark
 * PROXY_MARK_TO_PROXY with a proxy port in the upper 16 bits: a TCP SYN or
 * a UDP datagram), passed up by the bridge, is given to the proxy's socket;
 * without one it is dropped and counted (fail closed). Everything else
 * passes untouched.
 */
SEC("tc")
int proxy_assign(struct __sk_buff *skb)
{
	struct packet p = {};
	__u32 mark = skb->mark;

	if ((mark & PROXY_MARK_MASK) != PROXY_MARK_TO_PROXY || !(mark >> 16))
		return TCX_NEXT;
	if (parse(skb, &p) || (p.key.proto != IPPROTO_TCP && p.key.proto != IPPROTO_UDP))
		return TCX_NEXT;
	if (assign_proxy(skb, &p.key, bpf_htons(mark >> 16))) {
		redirect_stat_inc(REDIRECT_STAT_NO_PROXY);
		return TCX_DROP;
	}
	return TCX_NEXT;
}
