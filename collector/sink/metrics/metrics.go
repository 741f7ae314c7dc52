package metrics

import (
	"fmt"

	"github.com/periscope-dev/periscope/api"
)

// catalog holds every metric definition, by role.
type catalog struct {
	flows, drops, policyVerdicts Def
	bytes, packets               Def
	tracked, evicted             Def
	httpRequests, httpDuration   Def
	lostEvents                   Def
	queueLength, queueDropped    Def
	queueWritten, queueFailed    Def
	spooledFlows, spoolBytes     Def
	writeErrors, writeDuration   Def
	eventsRead                   Def
	flowTableEntries             Def
	flowTableCapacity            Def
	policyRevision               Def
	policyMatches                Def
	queueCorrupt                 Def
	queueDeduplicated            Def
	queueRecovered               Def
	queueUnrecovered             Def
	stageIn, stageOut            Def
	stageDropped, stageQueued    Def
	dnsQueries, dnsResponses     Def
	dnsResponseTypes             Def
	mapMemory, mapMaxEntries     Def
}

func newCatalog(o Options) *catalog {
	return &catalog{
		flows: flowsDef(), drops: dropsDef(), policyVerdicts: policyVerdictsDef(),
		bytes: bytesDef(), packets: packetsDef(), tracked: trackedDef(), evicted: evictedDef(),
		httpRequests: httpRequestsDef(), httpDuration: httpDurationDef(o.HTTPBuckets),
		lostEvents:  lostEventsDef(),
		queueLength: queueLengthDef(), queueDropped: queueDroppedDef(),
		queueWritten: queueWrittenDef(), queueFailed: queueFailedDef(),
		spooledFlows: spooledFlowsDef(), spoolBytes: spoolBytesDef(),
		writeErrors: writeErrorsDef(), writeDuration: writeDurationDef(),
		eventsRead: eventsReadDef(), flowTableEntries: flowTableEntriesDef(), flowTableCapacity: flowTableCapacityDef(),
		policyRevision: policyRevisionDef(), policyMatches: policyMatchesDef(),
		queueCorrupt: queueCorruptDef(), queueDeduplicated: queueDeduplicatedDef(),
		queueRecovered: queueRecoveredDef(), queueUnrecovered: queueUnrecoveredDef(),
		stageIn: stageInDef(), stageOut: stageOutDef(), stageDropped: stageDroppedDef(), stageQueued: stageQueuedDef(),
		dnsQueries: dnsQueriesDef(), dnsResponses: dnsResponsesDef(), dnsResponseTypes: dnsResponseTypesDef(),
		mapMemory: mapMemoryDef(), mapMaxEntries: mapMaxEntriesDef(),
	}
}

// all lists the definitions in the order exporters declare them.
func (c *catalog) all() []*Def {
	return []*Def{
		&c.flows, &c.drops, &c.policyVerdicts,
		&c.bytes, &c.packets, &c.tracked, &c.evicted,
		&c.httpRequests, &c.httpDuration,
		&c.lostEvents, &c.queueLength, &c.queueDropped, &c.queueWritten, &c.queueFailed,
		&c.spooledFlows, &c.spoolBytes, &c.writeErrors, &c.writeDuration,
		&c.eventsRead, &c.flowTableEntries, &c.flowTableCapacity, &c.policyRevision, &c.policyMatches,
		&c.queueCorrupt, &c.queueDeduplicated, &c.queueRecovered, &c.queueUnrecovered,
		&c.stageIn, &c.stageOut, &c.stageDropped, &c.stageQueued,
		&c.dnsQueries, &c.dnsResponses, &c.dnsResponseTypes,
		&c.mapMemory, &c.mapMaxEntries,
	}
}

// Defs returns every metric's definition, with the default options'
// histogram buckets.
func Defs() []Def {
	o, _ := Options{}.WithDefaults()
	var defs []Def
	for _, d := range newCatalog(o).all() {
		defs = append(defs, *d)
	}
	return defs
}

// Metrics counts flow records into the model's metrics, in every exporter
// given to New. Its methods are safe for concurrent use.
type Metrics struct {
	opts        Options
	defs        *catalog
	instruments map[*Def][]Instrument // by exporter

	connections *connections
	traffic     *traffic
	http        *httpSignals
	dns         *dnsSignals
	policies    *policyMatches
	identities  *identityTexts  // the identity context's label values
	writes      *family[string] // sink write durations, by sink
	sources     sources
}

// New declares the metrics to the exporters and returns the counter that
// records into them.
func New(opts Options, exporters ...Exporter) (*Metrics, error) {
	o, err := opts.WithDefaults()
	if err != nil {
		return nil, err
	}
	m := &Metrics{opts: o, defs: newCatalog(o), instruments: map[*Def][]Instrument{}, identities: &identityTexts{}}
	defs := m.defs.all()
	for _, e := range exporters {
		insts, err := e.Declare(defs, m.collect)
		if err != nil {
			return nil, fmt.Errorf("declare metrics: %w", err)
		}
		if len(insts) != len(defs) {
			return nil, fmt.Errorf("declare metrics: %d instruments for %d definitions", len(insts), len(defs))
		}
		for i, d := range defs {
			if !d.Observed {
				if insts[i] == nil {
					return nil, fmt.Errorf("declare metrics: no instrument for %s", d.Name)
				}
				m.instruments[d] = append(m.instruments[d], insts[i])
			}
		}
	}
	m.connections = newConnections(m)
	m.traffic = newTraffic(m)
	m.http = newHTTPSignals(m)
	m.dns = newDNSSignals(m)
	m.policies = newPolicyMatches(m)
	m.writes = newFamily(m, func(sink string) []LabelValue { return []LabelValue{str(sink)} }, &m.defs.writeDuration)
	return m, nil
}

// Consume counts one flow record; it does not keep f. It makes *Metrics a
// sink.Observer, to be called on the pipeline goroutine.
func (m *Metrics) Consume(f *api.Flow) {
	m.connections.observe(f)
	m.policies.observe(f)
	m.traffic.observe(f)
	if f.Type == api.FlowTypeL7 && f.L7 != nil {
		m.observeL7(f)
	}
}

// observeL7 counts an L7 record by the record it carries (api.L7.Protocol).
func (m *Metrics) observeL7(f *api.Flow) {
	switch f.L7.Protocol() {
	case api.L7ProtocolHTTP:
		m.http.observe(f)
	case api.L7ProtocolDNS:
		m.dns.observe(f)
	}
}
