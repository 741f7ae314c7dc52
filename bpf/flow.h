/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * flow.h: the ONE definition of every structure shared between the eBPF
 * programs and Go (exported with bpf2go -type). Built with -Wpadded -Werror,
 * so every hole is an explicit pad field and layout drift is a build error.
 * Multi-byte fields are host byte order (little endian on bpfel).
 */
#ifndef PERISCOPE_FLOW_H
#define PERISCOPE_FLOW_H

/* Why an event was emitted; values equal Go's api.EventKind. */
enum flow_kind {
	FLOW_KIND_START = 1,    /* first packet of a connection */
	FLOW_KIND_STATE = 2,    /* the verdict changed (a new policy revision re-judged it) */
	FLOW_KIND_PERIODIC = 3, /* periodic report of a long connection */
	FLOW_KIND_END = 4,      /* built by the userspace sweeper; by BPF only on TCP port reuse */
	FLOW_KIND_SOCK = 5,     /* socket state change of a host process */
};

/* The TC hook a packet was seen at. */
enum flow_hook {
	FLOW_HOOK_UNKNOWN = 0,
	FLOW_HOOK_INGRESS = 1, /* the packet entered the host through the interface */
	FLOW_HOOK_EGRESS = 2,  /* the packet left the host through the interface */
};

/* Per-connection TCP state bits, kept in the entry (the sweeper ends closed connections). */
enum flow_state {
	FLOW_STATE_SYN = 1,     /* SYN without ACK */
	FLOW_STATE_SYNACK = 2,  /* SYN with ACK */
	FLOW_STATE_FIN_FWD = 4, /* FIN sent by the key's src */
	FLOW_STATE_FIN_REV = 8, /* FIN sent by the key's dst */
	FLOW_STATE_RST = 16,    /* RST either way */
	FLOW_STATE_REPLACED = 32, /* ended: a new SYN on the tuple is replacing the entry */
};

/* Slots of the per-CPU stats array. */
enum flow_stat {
	FLOW_STAT_EMITTED = 0, /* ring-buffer reservations attempted */
	FLOW_STAT_LOST = 1,    /* reservations that failed: events lost */
	FLOW_STAT_STARTED = 2, /* flow-table entries created (START events attempted) */
	FLOW_STAT_ENDED = 3,   /* entries ended by BPF: replaced on TCP port reuse */
	FLOW_STAT_MAX = 4,
};

/*
 * Key of the flow table: one entry per connection per interface. The
 * (addr, port) pair that sorts lower is src, so both directions of a
 * connection share the entry. IPv4 addresses use the first 4 bytes, the
 * rest is zero. For ICMP, sport is the echo identifier (or type<<8|code for
 * non-echo messages) and dport is 0; they are not swapped.
 */
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 ifindex;
	__u16 sport;
	__u16 dport;
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* IPPROTO_* */
	__u8 pad[2];
};

/*
 * Value of the flow table. Index 0 of packets/bytes counts key src -> dst,
 * index 1 the reverse. Bytes are skb->len: the L2 frame length as seen at
 * TC (Ethernet header included, FCS excluded, GSO super-packets counted as
 * one packet of their full length).
 */
struct flow_value {
	__u64 first_seen;  /* bpf_ktime_get_boot_ns */
	__u64 last_seen;
	__u64 last_report; /* time of the last event for this flow */
	__u64 packets[2];
	__u64 bytes[2];
	__u32 tcp_flags;   /* OR of all TCP flags seen both ways (NS is bit 8) */
	__u32 state;       /* enum flow_state bits seen */
	__u8 src_is_initiator;
	__u8 hook;         /* enum flow_hook at which the initiator's packets are seen */
	__u8 icmp_type;    /* of the first ICMP packet seen */
	__u8 icmp_code;
	__u8 verdict;      /* enum flow_verdict of the connection */
	__u8 proxy;        /* enum flow_proxy: the connection's part in a proxy redirect */
	__u16 drop_reason; /* enum drop_reason when verdict is DROPPED or AUDIT */
	__u32 policy_set;  /* policy_value.policy_set of the deciding entry (0: none) */
	/*
	 * 0, or the local destination endpoint (its host-side ifindex) whose
	 * ingress policy dropped the connection at this interface, the source's
	 * (see local_ep in tc_flow.c): the entry is then that endpoint's record
	 * (hook is FLOW_HOOK_EGRESS, the verdict and policy_set are its
	 * ingress'), and its events carry that ifindex.
	 */
	__u32 observed_at;
	__u64 revision;    /* policy revision that decided the verdict (0: no policy) */
};

/*
 * The ring-buffer event. Addresses and ports are in flow_key order (src is
 * the key's src); src_is_initiator says which side started the connection;
 * the counters are already oriented: fwd = initiator -> responder. Counts
 * are exact cumulative totals at ts.
 */
struct flow_event {
	__u64 ts;          /* when emitted, bpf_ktime_get_boot_ns */
	__u64 first_seen;
	__u64 last_seen;
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u64 cgroup_id;   /* sock events only */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 ifindex;
	__u32 pid;         /* sock events only */
	__u16 sport;
	__u16 dport;
	__u16 tcp_flags;
	__u8 kind;         /* enum flow_kind */
	__u8 family;       /* 4 or 6 */
	__u8 proto;
	__u8 hook;         /* enum flow_hook of the initiator's packets */
	__u8 src_is_initiator;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 verdict;      /* enum flow_verdict; 0 in sock events */
	__u16 drop_reason; /* enum drop_reason (DROPPED; AUDIT: what it would have been) */
	char comm[16];     /* sock events only */
	__u32 policy_set;  /* index into the name-set table of revision */
	__u32 pad;
	__u64 revision;    /* policy revision that decided verdict (0: no policy) */
};

/* What happened to a connection's packets; values equal Go's api.Verdict. */
enum flow_verdict {
	FLOW_VERDICT_FORWARDED = 1,
	FLOW_VERDICT_DROPPED = 2,
	FLOW_VERDICT_AUDIT = 4, /* would have been dropped; the endpoint is in audit mode */
};

/* Drop reasons; values equal Go's api.DropReason (Cilium's numbering). */
enum drop_reason {
	DROP_POLICY_DENIED = 133, /* no allow matched and the direction is default deny */
	DROP_POLICY_DENY = 181,   /* an explicit deny matched */
};

/* Directions of policy, seen from the local endpoint (api.TrafficDirection). */
enum policy_dir {
	POLICY_DIR_INGRESS = 1,
	POLICY_DIR_EGRESS = 2,
};

/* Actions of a policy entry. */
enum policy_action {
	POLICY_ACTION_ALLOW = 1,
	POLICY_ACTION_DENY = 2,
};

/*
 * The policy maps, laid out as enforcer/compile documents (its package doc
 * is the specification of keys, values and the lookup order). Every policy
 * map exists twice (slot 0 and 1): revision r lives in slot r & 1, so
 * userspace fills the inactive slot, publishes the revision, waits for an RCU
 * grace period and clears the old slot; a packet reads the revision once and
 * judges with one slot only, never with a half-written policy.
 *
 * struct policy_key keys two maps: the policy hash (exact keys: prefixlen is
 * 96 for one port, 80 for every port of proto, 72 for every protocol; the
 * prefixlen is part of the hashed key, so port 0 and "any port" differ) and
 * the policy_range LPM trie (port ranges that are not a single port:
 * prefixlen 81..95).
 */
struct policy_key {
	__u32 prefixlen;   /* host order: 72 + (proto ? 8 + port bits : 0) */
	__be32 endpoint_id; /* local endpoint: the host-side ifindex */
	__be32 identity;   /* remote identity; 0 = any identity */
	__u8 direction;    /* enum policy_dir */
	__u8 proto;        /* IPPROTO_*; 0 = any protocol and port */
	__be16 dport;      /* destination port; ICMP/ICMPv6: the type */
};

struct policy_value {
	__u32 policy_set;  /* index into the userspace name-set table */
	__u8 action;       /* enum policy_action */
	__u8 pad[3];
};

/*
 * Bits of policy_enforce.flags (enforcer/compile's ProbeFlags): which probes
 * of the lookup order can hit for the endpoint; the others are skipped.
 */
enum policy_enforce_flag {
	POLICY_ENFORCE_IPCACHE_LPM = 1,    /* the slot's ipcache_lpm trie has entries */
	POLICY_ENFORCE_RANGES = 2,         /* policy_range has entries of this endpoint */
	POLICY_ENFORCE_ANY_PORT = 4,       /* hash keys of every port of a protocol (80) */
	POLICY_ENFORCE_ANY_PROTO = 8,      /* hash keys of every protocol (72) */
	POLICY_ENFORCE_BY_IDENTITY = 16,   /* keys of a non-zero identity */
	POLICY_ENFORCE_ANY_IDENTITY = 32,  /* keys of identity 0 */
	POLICY_ENFORCE_FAST_PEERS = 64,    /* policy_fast has peer-address slots of this endpoint */
	POLICY_ENFORCE_HOST_DEVICE = 128,  /* a host device: the host endpoint (bpf/host_policy.h) */
};

/*
 * Value of policy_enforce (key: __u32 endpoint id, host order). An entry
 * exists only for an endpoint that some policy selects: no entry means no
 * policy lookup at all.
 */
struct policy_enforce {
	__u8 ingress; /* 1: default deny for the endpoint's ingress */
	__u8 egress;  /* 1: default deny for the endpoint's egress */
	__u8 audit;   /* 1: evaluate and report AUDIT, never drop */
	__u8 flags;   /* enum policy_enforce_flag bits */
};

/*
 * Key of the ipcache hash (host entries, prefixlen always 32 + 32 or
 * 32 + 128) and of the ipcache_lpm trie (shorter prefixes).
 */
struct ipcache_key {
	__u32 prefixlen;   /* host order: 32 + address prefix bits */
	__u8 family;       /* 4 or 6 */
	__u8 pad[3];
	__u8 addr[16];     /* IPv4 in the first 4 bytes (as flow_key) */
};                         /* value: __u32 identity (host order); miss = world (2) */

/*
 * policy_fast: an array of one-cache-line buckets (key: __u32 bucket index,
 * value: struct policy_fast_bucket) that serves the exact-port policy keys
 * in one memory access, where a hash map reads its bucket array and then a
 * separately allocated element (two dependent cache misses, the cost that
 * grows with the rule count once the maps outgrow the caches). A slot is
 * found in bucket policy_fast_hash(slot) & (POLICY_FAST_BUCKETS - 1) only;
 * there is no probing. Two kinds of slot:
 *
 *  - identity slots (family 0): a prefixlen-96 key of the policy, addr[0..3]
 *    holding the __be32 identity. Such a key is in the policy hash only when
 *    its bucket was full: then slot[0].spill of its bucket is 1, and only then
 *    does a miss here go on to the hash.
 *  - peer slots (family 4 or 6): the first probe's answer for a host peer
 *    (an ipcache hash entry of a non-zero identity) on an exact port, i.e.
 *    the identity slot of (endpoint, the peer's identity, direction, proto,
 *    port), keyed by the peer's address: one access instead of the ipcache
 *    lookup and the policy lookup. Optional (written only into free slots):
 *    a miss takes the ordinary path, so it never changes an answer.
 *
 * The match compares every byte but action, spill, pad and policy_set.
 */
struct policy_fast_slot {
	__be32 endpoint_id; /* 0: empty slot */
	__u8 direction;     /* enum policy_dir */
	__u8 proto;         /* IPPROTO_*, never 0 */
	__be16 dport;
	__u8 family;        /* 0: identity slot; 4, 6: peer slot */
	__u8 action;        /* enum policy_action (the value) */
	__u8 spill;         /* slot[0] only: an identity key of the bucket is in the hash */
	__u8 pad;
	__u32 policy_set;   /* the value's policy_set */
	__u8 addr[16];      /* identity slot: __be32 identity, then zeros; peer: as flow_key */
};

/* Two slots: 64 bytes, one cache line (the mmapable array is page aligned). */
struct policy_fast_bucket {
	struct policy_fast_slot slot[2];
};

#define POLICY_FAST_BUCKETS 32768

/*
 * The one element of the policy_rev array (mmapable: userspace publishes a
 * revision with one atomic 8-byte store). Revision 0 means no policy was
 * ever applied: the programs skip every policy lookup.
 */
struct policy_state {
	__u64 revision;
};

/*
 * Transparent redirect to a local proxy (see tc_flow.c). A connection whose
 * initiator's packets enter the host at a TC ingress hook, judged FORWARDED
 * or AUDIT, and whose destination port matches a redirect entry, is
 * delivered to the proxy's transparent socket on loopback instead of its
 * destination: bpf_sk_assign to the socket found at 127.0.0.1 / ::1 on the
 * entry's proxy_port, the destination MAC rewritten to the interface's own,
 * and skb->mark PROXY_MARK_TO_PROXY, which the datapath's policy routing
 * rule delivers locally whatever the destination address (see
 * host_mac_value for bridge ports).
 */
enum flow_proxy {
	FLOW_PROXY_NONE = 0,
	FLOW_PROXY_REDIRECT = 1, /* the initiator's packets go to the proxy */
	FLOW_PROXY_UPSTREAM = 2, /* the proxy's own connection: replies go back to it */
};

/* skb->mark bits of the redirect; only the bits of PROXY_MARK_MASK are ours. */
enum proxy_mark {
	PROXY_MARK_MASK = 0x0f00,
	PROXY_MARK_TO_PROXY = 0x0200, /* set by TC: deliver to the local stack (policy routing) */
	PROXY_MARK_UPSTREAM = 0x0b00, /* set by the proxy (SO_MARK) on its upstream sockets */
};

/*
 * Key of the redirect hash. An EGRESS entry (the endpoint's own outgoing
 * connections) is keyed by the endpoint, the interface its packets enter
 * by; an INGRESS entry (connections to the endpoint) by the endpoint's
 * address, since its connections are caught at the initiator's hook.
 */
struct redirect_key {
	__u32 endpoint_id; /* EGRESS: the endpoint's host-side ifindex (host order); INGRESS: 0 */
	__u8 direction;    /* enum policy_dir */
	__u8 proto;        /* IPPROTO_TCP or IPPROTO_UDP */
	__be16 dport;      /* the destination port redirected */
	__u8 family;       /* INGRESS: 4 or 6; EGRESS: 0 */
	__u8 pad[3];
	__u8 addr[16];     /* INGRESS: the endpoint's address (as flow_key); EGRESS: zeros */
};

struct redirect_value {
	__be16 proxy_port; /* the proxy's transparent socket on 127.0.0.1 and ::1 */
	__u8 flags;        /* enum redirect_flag */
	__u8 pad;
};

enum redirect_flag {
	/* The proxy enforces policy on the port: an INGRESS connection no
	 * hook steered to it is dropped, not delivered directly. */
	REDIRECT_FLAG_POLICY = 1,
};

/*
 * Value of the host_mac map (key: __u32 ifindex, host order). On a bridge
 * port the socket is assigned by proxy_assign at the bridge's own TC
 * ingress, after the bridge passed the frame up: bridge netfilter
 * (br_netfilter, bridge-nf-call-iptables) drops a socket assigned at the
 * port. The proxy port travels there in skb->mark's upper 16 bits.
 */
struct host_mac_value {
	__u8 addr[6]; /* the interface's own MAC: a frame to it is the host's */
	__u8 bridged; /* 1: a bridge port (the bridge runs proxy_assign) */
	__u8 pad;
};

/* Slots of the per-CPU redirect_stats array. */
enum redirect_stat {
	REDIRECT_STAT_CONNECTIONS = 0, /* connections steered to the proxy */
	REDIRECT_STAT_NO_PROXY = 1,    /* packets dropped: no proxy socket (fail closed) */
	REDIRECT_STAT_UPSTREAM = 2,    /* connections of the proxy to upstreams seen */
	REDIRECT_STAT_BYPASS = 3,      /* connections to a redirected port that no hook steered: dropped */
	REDIRECT_STAT_MAX = 4,
};

#endif /* PERISCOPE_FLOW_H */
