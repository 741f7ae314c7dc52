package metrics

// The metrics of a flow source's kernel maps (sink.SourceCounters.Maps),
// read when an exporter collects: what each map costs and how large it is.

func mapMemoryDef() Def {
	return Def{
		Name: BPFMapMemoryBytes, OTelName: OTelBPFMapMemory, Unit: "By", Kind: KindGauge, Observed: true,
		Help:   "Memory the kernel accounts to each of a flow source's BPF maps (memlock: a preallocated map's whole size, a hash's buckets plus its entries), by source and map.",
		Labels: []Label{{Name: LabelSource, Key: KeyFlowSource}, {Name: LabelMap, Key: KeyBPFMap}},
	}
}

func mapMaxEntriesDef() Def {
	return Def{
		Name: BPFMapMaxEntries, OTelName: OTelBPFMapMaxEntries, Unit: "{entry}", Kind: KindGauge, Observed: true,
		Help:   "Size of each of a flow source's BPF maps: its max_entries (for a ring buffer, its bytes), by source and map.",
		Labels: []Label{{Name: LabelSource, Key: KeyFlowSource}, {Name: LabelMap, Key: KeyBPFMap}},
	}
}
