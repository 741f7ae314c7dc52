package datapath

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// The kernel maps are sized for a node, not for the largest cluster: what a
// preallocated map (the LRU flow and socket tables) or a hash's bucket array
// (every hash map, allocated whole at creation) costs is paid whether or not
// it is used. docs/FLOWS.md ("Kernel memory") states the budget and what
// each map costs.
//
// The flow maps follow Config.FlowBudget, the connections the node tracks
// at once:
//
//   - flows: 2 entries per connection, since a connection between two local
//     endpoints has an entry at each one's veth (≈ 200 bytes each);
//   - socks: 2 sockets per connection, both ends being local (≈ 100 bytes);
//   - events: 128 bytes per connection of the budget (2 MiB for 16,384),
//     ≈ 13,000 events: the starts and socket closes of ≈ 3,300 new
//     connections, so at 2,000 new connections a second the reader may
//     stall ≈ 1.5 s before an event is lost (and every loss is counted).
//
// The policy maps follow the node's policy scale, fixed here: the hashes'
// bucket arrays cost 16 bytes per entry of max_entries. The LPM tries and
// the entries of hashes created with BPF_F_NO_PREALLOC cost only what they
// hold; policy_fast is a fixed 2 MiB per revision slot (tc_flow.c).
const (
	policyKeys     = 65536 // policy_0/1: keys of one revision (endpoint × peer identity × port)
	ipcacheHosts   = 65536 // ipcache_0/1: host addresses with a known identity
	localEndpoints = 4096  // enforce_0/1, local_ep_0/1, host_mac, redirect: per endpoint, address or interface
)

// flowTableFor is the default flow-table size of a budget.
func flowTableFor(budget int) int { return 2 * budget }

// sockTableFor is the default socket-table size of a budget.
func sockTableFor(budget int) int { return 2 * budget }

// ringBufferFor is the default ring-buffer size of a budget: 128 bytes per
// connection rounded up to a power of two, at least 256 KiB.
func ringBufferFor(budget int) int {
	want := max(128*budget, 256<<10)
	size := 1
	for size < want {
		size <<= 1
	}
	return size
}

// fixedSizes are the max_entries of the maps not sized from the budget,
// by name (the tries keep their limit: they cost only what they hold).
var fixedSizes = map[string]uint32{
	"policy_0": policyKeys, "policy_1": policyKeys,
	"ipcache_0": ipcacheHosts, "ipcache_1": ipcacheHosts,
	"enforce_0": localEndpoints, "enforce_1": localEndpoints,
	"local_ep_0": localEndpoints, "local_ep_1": localEndpoints,
	"host_mac": localEndpoints, "redirect": localEndpoints,
}

// sizeFlowMaps sets the flow program's map sizes from cfg.
func sizeFlowMaps(spec *ebpf.CollectionSpec, cfg Config) error {
	spec.Maps[tcFlowMapEvents].MaxEntries = uint32(cfg.RingBufferSize)
	spec.Maps[tcFlowMapFlows].MaxEntries = uint32(cfg.FlowTableSize)
	for name, n := range fixedSizes {
		m, ok := spec.Maps[name]
		if !ok {
			return fmt.Errorf("size map %s: not in the flow program", name)
		}
		m.MaxEntries = n
	}
	return nil
}
