package metrics

import "github.com/periscope-dev/periscope/collector/sink"

// The metrics of the datapath's kernel maps, read when an exporter
// collects: what each map costs, and how full the flow table is (its
// capacity is periscope_bpf_map_max_entries{map="flows"}).

func mapMemoryDef() Def {
	return Def{
		Name: BPFMapMemoryBytes, OTelName: OTelBPFMapMemory, Unit: "By", Kind: KindGauge, Observed: true,
		Help:   "Memory the kernel accounts to each of the datapath's BPF maps (memlock: a preallocated map's whole size, a hash's buckets plus its entries), by map.",
		Labels: []Label{{Name: LabelMap, Key: KeyBPFMap}},
	}
}

func mapMaxEntriesDef() Def {
	return Def{
		Name: BPFMapMaxEntries, OTelName: OTelBPFMapMaxEntries, Unit: "{entry}", Kind: KindGauge, Observed: true,
		Help:   "Size of each of the datapath's BPF maps: its max_entries (for the ring buffer, its bytes), by map.",
		Labels: []Label{{Name: LabelMap, Key: KeyBPFMap}},
	}
}

func flowTableEntriesDef() Def {
	return Def{
		Name: FlowTableEntries, OTelName: OTelFlowTableEntries, Unit: "{entry}", Kind: KindGauge, Observed: true,
		Help: "Entries of the kernel flow table at the sweeper's last pass (one per connection and interface); near its max_entries, flows are evicted before their End.",
	}
}

// AddKernelSource reports read()'s maps as periscope_bpf_map_memory_bytes
// and periscope_bpf_map_max_entries by map, and its flow-table fill as
// periscope_flow_table_entries, whenever an exporter collects. read must be
// safe for concurrent use.
func (m *Metrics) AddKernelSource(read func() sink.KernelMaps) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.kernel = append(m.sources.kernel, read)
}
