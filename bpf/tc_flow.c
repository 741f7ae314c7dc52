// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_flow.c: per-connection flow accounting at TC ingress and egress.
 *
 * Every IP packet updates one flow-table entry (exact packet and byte
 * counts both ways, TCP flags, first/last seen). An event goes to the ring
 * buffer only when a flow starts, when a new SYN / SYN-ACK / FIN / RST
 * appears, and every report_interval_ns of a busy flow: never one event
 * per packet. Flow ends are reported by the userspace sweeper from the
 * table entry, so final counts are exact.
 *
 * The programs never drop or modify: every path returns TCX_NEXT
 * (TC_ACT_UNSPEC), which lets later TCX programs (or cls_bpf filters) run and
 * passes the packet when there are none. Truncated or malformed packets
 * are passed untouched and produce no event and no entry.
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

/* Set at load time from Config.ReportInterval. */
volatile const __u64 report_interval_ns = 5000000000ULL;

/* Default size; the loader overrides max_entries from Config. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} flows SEC(".maps");

/* What the parser extracts from one packet. */
struct packet {
	struct flow_key key; /* in packet order until normalised */
	__u16 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 responder_sent; /* SYN-ACK or echo reply: the sender is the responder */
	__u8 pad[3];
};

/* Returns 0 when p holds an L4 flow, <0 when the packet must be ignored. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, __u8 proto,
				    struct packet *p)
{
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcphdr th;

		if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
			return -1;
		if (th.doff < 5)
			return -1;
		p->key.sport = bpf_ntohs(th.source);
		p->key.dport = bpf_ntohs(th.dest);
		/* Byte 13 holds FIN..CWR; NS is the low bit of byte 12. */
		p->tcp_flags = ((__u8 *)&th)[13] | ((((__u8 *)&th)[12] & 1) << 8);
		p->responder_sent = (p->tcp_flags & 0x12) == 0x12;
		return 0;
	}
	case IPPROTO_UDP:
	case IPPROTO_SCTP_: {
		/* UDP and SCTP both start with source and destination ports. */
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, off, ports, proto == IPPROTO_UDP ? 8 : 4))
			return -1;
		p->key.sport = bpf_ntohs(ports[0]);
		p->key.dport = bpf_ntohs(ports[1]);
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_: {
		struct {
			__u8 type;
			__u8 code;
			__u16 csum;
			__be16 id;
			__u16 seq;
		} ih;
		__u8 req = proto == IPPROTO_ICMP ? 8 : 128;
		__u8 rep = proto == IPPROTO_ICMP ? 0 : 129;

		if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)))
			return -1;
		p->icmp_type = ih.type;
		p->icmp_code = ih.code;
		if (ih.type == req || ih.type == rep) {
			p->key.sport = bpf_ntohs(ih.id);
			p->responder_sent = ih.type == rep;
		} else {
			p->key.sport = ((__u16)ih.type << 8) | ih.code;
		}
		p->key.dport = 0;
		return 0;
	}
	default:
		/* Other protocols are tracked by address pair only. */
		return 0;
	}
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off, struct packet *p)
{
	struct iphdr ih;
	__u32 hlen;

	if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)))
		return -1;
	if (ih.version != 4 || ih.ihl < 5)
		return -1;
	hlen = ih.ihl * 4;
	if (off + hlen > skb->len)
		return -1;
	/* Non-first fragments carry no L4 header: not counted (documented). */
	if (bpf_ntohs(ih.frag_off) & 0x1fff)
		return -1;
	p->key.family = 4;
	p->key.proto = ih.protocol;
	__builtin_memcpy(p->key.saddr, &ih.saddr, 4);
	__builtin_memcpy(p->key.daddr, &ih.daddr, 4);
	return parse_l4(skb, off + hlen, ih.protocol, p);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off, struct packet *p)
{
	struct ipv6hdr ih;
	__u8 nexthdr;
	int i;

	if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)))
		return -1;
	if (ih.version != 6)
		return -1;
	p->key.family = 6;
	__builtin_memcpy(p->key.saddr, &ih.saddr, 16);
	__builtin_memcpy(p->key.daddr, &ih.daddr, 16);
	nexthdr = ih.nexthdr;
	off += sizeof(ih);

	for (i = 0; i < MAX_IPV6_EXT; i++) {
		struct {
			__u8 nexthdr;
			__u8 len;
			__be16 frag_off; /* fragment header only */
		} eh;

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
			return parse_l4(skb, off, nexthdr, p);
		}
		if (bpf_skb_load_bytes(skb, off, &eh, sizeof(eh)))
			return -1;
		if (nexthdr == IPPROTO_FRAGMENT_) {
			if (bpf_ntohs(eh.frag_off) & 0xfff8)
				return -1; /* non-first fragment: no L4 header */
			off += 8;
		} else if (nexthdr == IPPROTO_AH_) {
			off += ((__u32)eh.len + 2) * 4;
		} else {
			off += ((__u32)eh.len + 1) * 8;
		}
		nexthdr = eh.nexthdr;
	}
	return -1; /* chain longer than MAX_IPV6_EXT */
}

/* Returns 0 when p holds a flow key in packet order. */
static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	__be16 proto;
	__u32 off = ETH_HLEN;
	int i;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)))
		return -1;
	/* Up to two VLAN tags (802.1ad + 802.1Q) left in the frame. */
	for (i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (bpf_skb_load_bytes(skb, off + 2, &proto, sizeof(proto)))
			return -1;
		off += 4;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, off, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, off, p);
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
	e->ifindex = k->ifindex;
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
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int handle(struct __sk_buff *skb, __u8 hook)
{
	struct packet p = {};
	struct flow_value *v;
	__u64 now, len = skb->len;
	__u8 other = hook == FLOW_HOOK_INGRESS ? FLOW_HOOK_EGRESS : FLOW_HOOK_INGRESS;
	int rev;

	if (parse(skb, &p))
		return TCX_NEXT;
	p.key.ifindex = skb->ifindex;
	rev = normalise(&p.key);
	now = bpf_ktime_get_boot_ns();

	v = bpf_map_lookup_elem(&flows, &p.key);
	if (!v) {
		struct flow_value nv = {};
		/* The sender of the first packet started the connection, unless
		 * that packet is a SYN-ACK or an echo reply. */
		int sender_initiates = !p.responder_sent;

		nv.first_seen = now;
		nv.last_seen = now;
		nv.last_report = now;
		nv.packets[rev] = 1;
		nv.bytes[rev] = len;
		nv.tcp_flags = p.tcp_flags;
		if (p.key.proto == IPPROTO_TCP)
			nv.state = state_bits(p.tcp_flags, rev);
		nv.src_is_initiator = sender_initiates ? !rev : rev;
		nv.hook = sender_initiates ? hook : other;
		nv.icmp_type = p.icmp_type;
		nv.icmp_code = p.icmp_code;
		if (bpf_map_update_elem(&flows, &p.key, &nv, BPF_NOEXIST) == 0) {
			emit(&p.key, &nv, FLOW_KIND_START, now);
			return TCX_NEXT;
		}
		/* Another CPU created it first: account there. */
		v = bpf_map_lookup_elem(&flows, &p.key);
		if (!v)
			return TCX_NEXT;
	}

	__sync_fetch_and_add(&v->packets[rev], 1);
	__sync_fetch_and_add(&v->bytes[rev], len);
	v->last_seen = now;

	__u8 kind = 0;
	if (p.key.proto == IPPROTO_TCP) {
		__u32 st = state_bits(p.tcp_flags, rev);

		if (p.tcp_flags & ~v->tcp_flags)
			__sync_fetch_and_or(&v->tcp_flags, p.tcp_flags);
		/* Only the CPU that sets a new state bit reports it. */
		if (st & ~v->state) {
			__u32 old = __sync_fetch_and_or(&v->state, st);

			if (st & ~old)
				kind = FLOW_KIND_STATE;
		}
	}
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
	return TCX_NEXT;
}

SEC("tc")
int flow_ingress(struct __sk_buff *skb)
{
	return handle(skb, FLOW_HOOK_INGRESS);
}

SEC("tc")
int flow_egress(struct __sk_buff *skb)
{
	return handle(skb, FLOW_HOOK_EGRESS);
}
