/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * events.h: the ring buffer and the loss counters every program emits
 * through. Each object declares them; the loader shares one instance
 * between objects (MapReplacements), so all events land in one ring.
 */
#ifndef PERISCOPE_EVENTS_H
#define PERISCOPE_EVENTS_H

#include "flow.h"

/* Default size; the loader overrides max_entries from Config. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* FLOW_STAT_EMITTED and FLOW_STAT_LOST, per CPU: read + lost = emitted. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_inc(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &slot);

	/*
	 * Atomic even though per CPU: a tracepoint in process context can be
	 * interrupted by a TC program in softirq on the same CPU.
	 */
	if (c)
		__sync_fetch_and_add(c, 1);
}

/*
 * reserve_event counts the attempt, and the loss when the ring is full:
 * a lost event is never silent.
 */
static __always_inline struct flow_event *reserve_event(void)
{
	struct flow_event *e;

	stat_inc(FLOW_STAT_EMITTED);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		stat_inc(FLOW_STAT_LOST);
	return e;
}

/*
 * Set at load time from the datapath's Config. The reader drains the ring on
 * a timer; an event wakes it only once this many bytes wait, so a burst of
 * events costs one wakeup rather than one each (a reader that caught up is
 * otherwise woken by every submit). 0 wakes it on every event.
 */
volatile const __u64 wakeup_bytes = 0;

static __always_inline void submit_event(void *e)
{
	__u64 flags = 0;

	if (wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

#endif /* PERISCOPE_EVENTS_H */
