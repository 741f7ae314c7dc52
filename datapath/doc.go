// Package datapath owns Periscope's kernel side from Go: it loads the eBPF
// programs of bpf/ (TC flow accounting, the sock tracepoint), attaches them
// to interfaces (TCX, or clsact + cls_bpf on kernels without TCX), pins their
// maps and links under a bpffs directory, reads the ring buffer, ends idle
// flows from the flow table (the sweeper) and decodes kernel events into
// api.Flow records.
//
// It must not know about endpoint names or labels, HTTP or sinks: the
// collector enriches the records it emits.
package datapath
