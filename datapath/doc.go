// Package datapath owns Periscope's kernel side from Go: it loads the eBPF
// programs of bpf/ (TC flow accounting, the sock tracepoint), attaches them
// to interfaces (TCX, or clsact + cls_bpf on kernels without TCX), pins their
// maps and links under a bpffs directory, reads the ring buffer, ends idle
// flows from the flow table (the sweeper) and decodes kernel events into
// api.Flow records.
//
// Records of connections, not of events: the kernel reports a connection
// at each interface it crosses (the flow table is keyed per interface) and
// each socket's close; Run pairs the two observation points of a
// connection into one record (api.Flow.Other, each point's verdict and
// exact counts kept) and folds socket closes into their connection's
// records (merge.go). A short connection is a START and an End. The ring
// is drained on a timer (Config.ReadInterval), the programs waking the
// reader only when it fills, so a burst of events costs one wakeup.
//
// The maps are sized from Config.FlowBudget (sizes.go); MapMemory reports
// what each one takes.
//
// It must not know about endpoint names or labels, HTTP or sinks: the
// collector enriches the records it emits.
//
// Policy: ApplyPolicy loads an enforcer/compile result into the kernel's
// ipcache, policy and enforce maps (double-buffered: revision r in slot r&1,
// published with one atomic store, the old slot cleared after an RCU grace
// period, in the background: ApplyPolicy returns once the new revision is
// in force, and the next one waits for the grace period first), so no
// packet is ever judged by a half-written policy. AdmitPolicy adds a DNS
// answer's new entries (enforcer/compile's Admit: keys no lookup met before)
// to the slot in force, the ipcache entries last, within the revision. The
// programs judge a connection when its flow entry is created and again on
// its next packet after each revision change; the verdict (FORWARDED,
// DROPPED with 133/181, AUDIT), the policy set and the revision travel in
// the entry and its events, and the decoder turns the set into policy names
// (tables of the current and the previous revision).
//
// Redirect: SetRedirects makes a list of (endpoint, direction, protocol,
// port) → proxy port the complete redirect table (its own map, entries
// added before stale ones are deleted). The flow program steers the
// connections they match, once L3/L4 policy allowed them, to a local
// proxy's transparent socket on 127.0.0.1 / ::1 (bpf_sk_assign; on a bridge
// port the small proxy_assign program at the bridge's ingress assigns it),
// with the destination MAC and packet type made the host's and the mark
// ProxyMarkToProxy, which the policy routing of EnsureProxyRouting
// delivers locally. The proxy's own upstream connections carry SO_MARK
// ProxyMarkUpstream: never redirected, their replies steered back to it.
// No proxy socket: the packet is dropped and counted (fail closed). See
// the header of bpf/tc_flow.c.
//
// Restarts: while a policy selects an endpoint (KeepsEnforcing), Close
// leaves the programs attached, their TCX links and all maps (flow table,
// ring buffer, counters, policy, redirects) pinned, so the node keeps enforcing with no
// collector; the next Load adopts them and AttachInterface swaps its
// programs into the pinned links in place (no gap, established connections
// keep their flow entries). Without a policy in force Close leaves nothing.
// One Datapath at a time owns a pin path: Load takes a flock on the
// directory before it adopts or removes anything there, and refuses
// (ErrPinPathInUse, touching nothing) while another process holds it; the
// kernel drops the lock of a process that dies, so crashes still adopt.
//
// Accounting: Stats counts since the pinned maps were made. The kernel's
// counters (events emitted and lost, flows started and ended) and the
// user-space ones (events read, decode errors, flows swept, records
// emitted, events merged: a pinned array map of their own, mapped into
// memory, so that a crash loses no increment) are adopted together or begin
// at zero together, so emitted = read + lost + pending and read + swept =
// records + merged + held + decode errors hold across restarts
// (Stats.Stages). One record may consume several events: those the merger
// folds into another's record count as merged; those it holds for their
// companion's as held (none between runs: Run emits them as it returns; a
// crash loses them, and the decoder's account is short by them).
//
// Limitations:
//   - The flow table is an LRU hash of Config.FlowTableSize entries. When it
//     is full the kernel silently evicts the least recently used flows: their
//     End is never reported and their counts since the last event are lost.
//     The kernel does not count evictions; Stats.FlowsEvicted estimates them.
//   - On a loopback interface only the ingress hook is attached (each packet
//     crosses lo's egress and then its ingress; counting both would double
//     it).
//   - A new TCP SYN on the tuple of a connection that saw FIN both ways or an
//     RST ends the old flow (an End built by the kernel) and starts a new one.
//   - Non-first IP fragments are not counted.
//   - A connection is judged from the first packet its entry sees. When that
//     is not the connection's first packet (the flow table is not adopted
//     across a restart without policy in force or after a ring/flow table
//     size change, and the LRU may evict a live entry), the sender of
//     that packet is taken for the initiator, unless it is a SYN-ACK or an
//     echo reply: a reply of an allowed connection can then be judged as a
//     connection of its own and dropped under default deny.
//   - ICMP errors and other non-echo ICMP messages are judged as connections
//     of their own (port = ICMP type), not as part of the connection they
//     refer to.
//   - The redirect catches connections at TC ingress hooks only: those the
//     host's own processes open to a redirected port are not redirected.
//     A TCP connection established before its port was redirected is not
//     moved to the proxy: one to an endpoint's EGRESS redirect is dropped at
//     the next revision (SetRedirects makes one), one to an INGRESS policy
//     redirect at the next revision's first packet of its initiator; a UDP
//     flow moves to the proxy at its next datagram.
//   - A revision change re-judges an existing connection at its next packet;
//     an idle connection keeps its verdict until then.
//   - At a restart without a policy in force, the stale links of a crashed
//     run are detached before the new ones attach: packets in between are
//     neither counted nor judged. With a policy in force the old programs
//     run until AttachInterface replaces them; events they emit while no
//     collector reads the ring are lost once it is full (counted). An
//     adopted revision has no policy names until the next ApplyPolicy.
//   - A ring buffer resized at an adopting restart is replaced: the events
//     the old one held, and those the old programs emit into it until
//     AttachInterface swaps them, count as emitted but are never read, so
//     the ring buffer's account is short by them (the resize is logged).
package datapath
