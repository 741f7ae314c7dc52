// Package dnspolicy brings the node's DNS policy into force: it owns the
// DNS proxy (enforcer/dnsproxy, listening on 127.0.0.1 and ::1, a
// collector source), the FQDN cache (enforcer/fqdn, its state file) and
// the table of DNS rules the proxy checks (enforcer/dnsmatch), and ties
// them to the policy store:
//
//   - Applier wraps the datapath's policystore.Applier: with every compiled
//     policy it puts the DNS part (Compiled.DNS) into the table and steers
//     the covered endpoints' DNS ports to the proxy (Compiled.DNSRedirects,
//     through its own part of the datapath's redirect table,
//     datapath.RedirectOwners), in the order that never leaves a
//     redirected query without the rules of either policy; it is a
//     policystore.Admitter too, passing an answer's new entries to the
//     datapath and the new ipcache to the table;
//   - the cache's Admit hook is the store's AdmitNames, so an answer is
//     released only once toFQDNs admits its addresses (its Admitted hook,
//     the store's lock-free NamesAdmitted, lets the proxy release an
//     answer admitted already without waiting); its Expire hook
//     asks the store to recompile (RefreshNames, from Run) when an address
//     a toFQDNs rule selected left the cache.
//
// It decides no policy (compile and dnsmatch do) and never touches a BPF
// map itself.
package dnspolicy
