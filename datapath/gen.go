package datapath

// The generated *_bpfel.go and *_bpfel.o are committed so `go build` needs no
// clang; CI regenerates and diffs them (the output is deterministic).
// -mcpu=v3 is needed for the atomic fetch-and-or / compare-and-swap.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type flow_event -type flow_key -type flow_value -type flow_kind -type flow_hook -type flow_state -type flow_stat -type flow_verdict -type drop_reason -type policy_key -type policy_value -type policy_enforce -type policy_enforce_flag -type ipcache_key -type policy_state -type policy_fast_slot -type policy_fast_bucket -type flow_proxy -type proxy_mark -type redirect_key -type redirect_value -type redirect_flag -type host_mac_value -type redirect_stat tcFlow ../bpf/tc_flow.c -- -mcpu=v3 -O2 -g -Wall -Wpadded -Werror -I../bpf
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel sockTrace ../bpf/sock_trace.c -- -mcpu=v3 -O2 -g -Wall -Wpadded -Werror -I../bpf
