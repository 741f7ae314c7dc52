package xdpflood

// The generated *_bpfel.go and *_bpfel.o are committed like the datapath's
// (see datapath/gen.go).

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel xdpFlood ../../../bpf/xdp_flood.c -- -mcpu=v3 -O2 -g -Wall -Wpadded -Werror -I../../../bpf
