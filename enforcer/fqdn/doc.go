// Package fqdn owns the FQDN cache: which names each local endpoint
// resolved to which addresses, until when (the answer's TTL, raised to a
// minimum). The DNS proxy records every allowed answer here before it
// releases the answer to the endpoint; the cache hands the answer to the
// policy's Admit hook first (so a toFQDNs rule can admit the addresses
// before the endpoint can connect), and tells the Expire hook when an
// address leaves (TTL expiry, a size bound, a forgotten endpoint). Flows
// get their source_names/destination_names from it (Annotate).
//
// The cache is bounded per endpoint and overall: when full it evicts the
// entry closest to expiry, of the same endpoint, or overall of the endpoint
// holding the most entries, so a flood of unique names from one endpoint
// evicts that endpoint's names first. It persists itself to a state file
// (atomically replaced) so a collector restart keeps names and access.
//
// It must not decide policy (the Admit hook does) nor touch the kernel.
package fqdn
