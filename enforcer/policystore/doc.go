// Package policystore owns the node's set of applied policies and brings it
// into force: it parses what a client applies (package policy), compiles
// the whole set against the node's endpoints and identities (package
// compile) on every change, hands the result to an Applier (the datapath),
// persists the set in a directory so a restarted collector applies the same
// set, and serves the policy and identity API (package api/policyapi).
//
// A change that does not parse, compile or apply is refused whole and the
// policy in force stays. L7 rules (compile.Compiled.L7) are applied
// through an L7Applier (the L7 proxy) around the kernel's apply, so that
// no request outside the old and the new policy passes (apply.go). The chain is parse → compile → apply, one step
// each (Store.Apply, compileSet, Applier.ApplyPolicy): a new kind of rule
// is parsed into policy.Policy, compiled into a part of compile.Compiled
// and applied by whoever enforces that part.
//
// DNS names are policy input too (toFQDNs): every compile reads Names (the
// FQDN cache), AdmitNames returns once a DNS answer's addresses are
// admitted (when the answer changes the policy: by adding the new
// addresses' entries to the policy in force when the applier is an
// Admitter and compile.Compiled.Admit can, else by a recompile, one for all
// the answers waiting meanwhile), and RefreshNames recompiles after names
// expired. Neither changes the revision nor the persisted set.
//
// It learns about endpoints only through the Endpoints interface (the
// collector's registry implements it) and must not know how endpoints are
// discovered, decode flows, or touch BPF maps itself.
package policystore
