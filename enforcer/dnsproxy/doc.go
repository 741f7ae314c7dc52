// Package dnsproxy owns the transparent DNS proxy: it receives the DNS
// queries (UDP and TCP) that the datapath steers to it, addressed to any
// server; checks each against the asking endpoint's DNS rules (a
// dnsmatch.Table); answers a denied query with REFUSED; forwards an allowed
// one to the server the endpoint asked for (the original destination:
// IP_RECVORIGDSTADDR for UDP, the accepted socket's local address for TCP);
// records the answer's addresses in the FQDN cache, whose Admit hook runs
// before the answer is released; and returns the answer byte for byte
// (a truncated UDP answer stays truncated, so the client retries over TCP).
//
// UDP queries are started by the listener's reader (batched reads) and go
// upstream over shared connected sockets, one per (source, server), each
// query under a fresh random ID; each socket's reader finishes the answers
// it reads itself (no hand-off), releasing an answer at once when the
// cache says its addresses are admitted already (QuickCache.TryRecord),
// and otherwise waiting for the admission (a policy recompile) in a
// goroutine of its own, so that one recompile holds back only the answers
// it must. TCP queries are handled one at a time per connection.
// Every query and answer becomes an L7 DNS flow record (Hubble's shape,
// observation_source "proxy"), emitted by Run as a collector source.
//
// OwnTimes is the distribution of the proxy's own time per forwarded
// query (reading the query to sending it upstream, plus reading the answer
// to sending the reply): a few clock reads and one atomic add per query,
// what a benchmark reads where the end-to-end latency is the machine's
// noise.
//
// Bounds: every upstream exchange has a deadline (a server that never
// answers costs the client a SERVFAIL after Options.Timeout); queries in
// flight, TCP connections and queued records are bounded, and what does
// not fit is refused (SERVFAIL) or counted as lost, never waited for.
// Malformed queries get FORMERR, or nothing when not even the header
// parses; malformed answers become SERVFAIL.
//
// Behind the datapath's redirect (datapath.SetRedirects: the proxy on
// 127.0.0.1 and ::1 at one port) it forwards from the endpoint's own
// address with SO_MARK datapath.ProxyMarkUpstream (Options.FromClient,
// UpstreamMark), so servers and policy see the pod; otherwise from the
// host's. A UDP answer leaves from the server's address and port through a
// send-only raw socket (without CAP_NET_RAW, through a transparent socket
// bound to them for the one reply). It must not steer traffic (the datapath redirects)
// nor decide which names a rule allows (dnsmatch).
package dnsproxy
