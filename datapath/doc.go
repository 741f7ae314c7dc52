// Package datapath owns Periscope's kernel side from Go: it loads the eBPF
// programs of bpf/ (TC flow accounting, the sock tracepoint), attaches them
// to interfaces (TCX, or clsact + cls_bpf on kernels without TCX), pins their
// maps and links under a bpffs directory, reads the ring buffer, ends idle
// flows from the flow table (the sweeper) and decodes kernel events into
// api.Flow records.
//
// It must not know about endpoint names or labels, HTTP or sinks: the
// collector enriches the records it emits.
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
package datapath
