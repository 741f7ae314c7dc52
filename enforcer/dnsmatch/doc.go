// Package dnsmatch owns the meaning of DNS names in policy: Cilium's
// matchName and matchPattern selectors (of toPorts[].rules.dns and of
// toFQDNs), compiled once and matched per query, and the per-endpoint table
// of DNS rules the DNS proxy consults for every query. It does no I/O and
// knows nothing about sockets, the kernel or the policy language's YAML: the
// policy compiler builds Rules from parsed policies and hands them to a
// Table.
//
// # Semantics (Cilium's pkg/fqdn/matchpattern and pkg/policy/api/fqdn.go)
//
// Names and selectors are compared in lower case and fully qualified (a
// trailing dot is added when missing), so "API.Example.com" and
// "api.example.com." are the same name.
//
//   - matchName is one literal name: only [-a-zA-Z0-9_.] characters, at
//     most 255. It matches that name exactly.
//   - matchPattern may hold '*' besides those characters:
//     "*" (or any run of stars, with or without a trailing dot) alone
//     matches every name; as a toFQDNs selector every name made of labels
//     of [-a-z0-9_] characters (and the root "."), as a rules.dns entry
//     every name at all (Cilium's proxy short-circuits it).
//     A leading "**." (two or more stars, then a dot) matches one or more
//     whole labels: "**.cilium.io" matches "a.cilium.io" and
//     "a.b.cilium.io", not "cilium.io".
//     Any other run of stars matches zero or more of [-a-z0-9_] inside ONE
//     label: "*.cilium.io" matches "www.cilium.io" but neither "cilium.io"
//     nor "a.b.cilium.io"; "*cilium.io" matches "cilium.io" and
//     "subcilium.io" but not "www.cilium.io"; "sub*.cilium.io" matches
//     "sub.cilium.io" and "subdomain.cilium.io"; "test.**.cilium.io" is
//     "test.*.cilium.io".
//   - A rules.dns list that is empty allows every name (Cilium: an L7 DNS
//     section without entries matches all).
package dnsmatch
