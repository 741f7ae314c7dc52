// Package collector is Periscope's node daemon: it takes the flow records of
// its sources (the datapath first, then producers of L7 records), enriches
// them with the endpoints declared for the node (names, labels, identities,
// traffic direction), keeps the most recent ones in an in-memory ring
// (package ring), and serves them over HTTP (/api/v1/flows, answered by
// flowquery.Server from the ring or Options.History; /api/v1/status,
// /healthz) in the Hubble-shaped wire form.
//
// The endpoints change only by explicit operations (endpoints.go): a
// restart keeps the endpoints its endpoints file no longer declares until
// RemoveEndpoint, so no endpoint silently stops being enforced.
//
// The pipeline follows Hubble's observer: enrich → ring write → sinks runs
// for one flow at a time, whichever source's goroutine emitted it (a lock
// serializes them when there are several); readers of the ring are separate
// and honour their context. With Options.Attribution, a record of a workload
// not yet discovered waits, bounded, between enrich and the ring for its
// endpoint (attribution.go); every other record passes at once. The collector never decodes kernel bytes and
// depends on the datapath only through the small interfaces in Options
// (Source, Attacher), so tests and the demo can feed it flows of their own.
package collector
