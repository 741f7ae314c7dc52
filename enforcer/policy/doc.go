// Package policy owns Periscope's policy language: parsing Cilium
// (cilium.io/v2 CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy) and
// Kubernetes (networking.k8s.io/v1 NetworkPolicy) YAML into one normalised
// form, and Evaluate, the reference decision every compiled form must agree
// with. It does no I/O besides reading policy files and knows nothing about
// the kernel's maps (package compile owns those).
//
// A stream of YAML documents is split by the YAML decoder and parsed once
// (ParseDocuments): errors count lines and columns in the whole stream,
// and every policy keeps its document's own text, which parses alone to
// the same policy.
//
// # Only the L3/L4 part, and nothing silently
//
// Every field Periscope does not enforce (L7 rules but rules.http and rules.dns, toServices,
// toGroups, to/fromRequires, to/fromNodes, authentication, named ports,
// serverNames, listener, TLS contexts, CIDR groups, ...) is a validation
// error with file:line:column: an ignored rule would be a policy bypass.
// Unknown fields are errors too. Pure metadata (description, rule labels,
// metadata.labels/annotations, status) is accepted and ignored.
//
// # Semantics (as Cilium documents them)
//
//   - An endpoint no rule selects in a direction allows everything in that
//     direction. A rule that selects an endpoint and has an ingress or
//     ingressDeny section puts it in default deny at ingress (likewise
//     egress), unless enableDefaultDeny says otherwise (false turns it
//     off; true on a direction without rules turns nothing on: Cilium
//     makes a policy entry per rule)
//     (docs.cilium.io security/policy/intro, "Policy Enforcement Modes";
//     the Rule API doc of enableDefaultDeny). An empty list (`ingress: []`)
//     is "omitted or empty": the rule does not apply in that direction. A
//     rule with no ingress, ingressDeny, egress or egressDeny rule at all
//     is refused, as Cilium's Rule.Sanitize refuses it (`ingress: []` does
//     not isolate as a NetworkPolicy's does; `ingress: [{}]` does).
//   - `ingress: [{}]` selects the endpoint (default deny) and allows
//     nothing: an ingress rule with no L3 peer and no toPorts matches no
//     traffic (Cilium's "default deny ingress" example). A rule with toPorts
//     (or icmps) but no peer applies to every peer; a peer list written
//     empty (`fromEndpoints: []`, `fromEntities: []`, CIDRs) selects no
//     peer, beside toPorts too, as Cilium 1.20's mergeEndpointSelectors
//     and mergeL4Filter have it (null is absent).
//   - Allows from all policies union; any matching deny wins over any allow
//     (docs.cilium.io security/policy/deny).
//   - The endpointSelector of a namespaced CiliumNetworkPolicy gets
//     "k8s:io.kubernetes.pod.namespace=<ns>". Its fromEndpoints/toEndpoints
//     are scoped as Cilium's getEndpointSelector scopes them: a selector on
//     a reserved label or on the namespace label is left alone; otherwise a
//     namespaced policy's selector is confined to its namespace unless it
//     selects by namespace labels (io.cilium.k8s.namespace.labels.<key>,
//     which then select across namespaces), and a clusterwide policy's
//     selects pods only ("namespace label Exists", cilium/cilium#12890)
//     unless its subject selects reserved:init. So `fromEndpoints: [{}]` is
//     "every pod in the policy's namespace", or in a clusterwide policy
//     "every pod". Endpoints carry their namespace's labels and the cluster
//     label io.cilium.k8s.policy.cluster (package collector gives them);
//     Cilium's default scoping to the local cluster is a no-op on one
//     cluster, so it is not added.
//   - A CiliumClusterwideNetworkPolicy with nodeSelector is a host policy
//     (Cilium's host firewall): its subject is the host endpoint only (the
//     local endpoint labelled reserved:host, whose other labels are the
//     node's), never a pod; endpointSelector rules never select the host.
//   - Entities map to reserved identities: host, world, remote-node,
//     kube-apiserver, health, init, unmanaged, ingress; cluster is every pod
//     plus every reserved identity but world; all is every peer.
//   - fromCIDR/toCIDR/CIDRSet select only peers outside the cluster (world
//     and CIDR identities), by address, minus except.
//   - protocol ANY means TCP, UDP and SCTP; a missing port or port 0 means
//     every port. ICMP rules match the ICMP type. The port-less IP
//     protocols of Cilium's L4Proto (VRRP, IGMP, GRE, IPIP, IPV6, ESP, AH)
//     match their protocol number, port empty or 0.
//   - Kubernetes NetworkPolicy: policyTypes (default Ingress, plus Egress
//     when an egress section is present) select; `ingress: [{}]` allows all;
//     a missing `from` means every peer; ports default to TCP.
//     namespaceSelector selects on namespace labels as Cilium translates
//     it: key K is the pod label k8s:io.cilium.k8s.namespace.labels.K, and
//     only pods match (`{}` is every pod of every namespace).
//
// # L7 rules (rules.http), as Cilium means them
//
// A toPorts item's rules.http (method, path, host: RE2 regular expressions
// matched against the whole method, :path with its query, :authority;
// headers "Name" or "Name: value"; headerMatches {name, value} without a
// mismatch action) puts its ports, for the peer rule's peers, under L7
// policy: only requests matching one rule pass (EvaluateHTTP, HasL7).
// Rules of every allow matching the peer union; an allow of the same
// peer on the port without rules lets every request pass; L3/L4 decides
// first (a denied peer never reaches L7). As in Cilium: only protocol
// TCP, a port number (no 0, no range here), never in deny rules or host
// policies; an empty rule {} matches every request (visibility).
//
// # DNS (types_dns.go, parse_dns.go, evaluate_dns.go)
//
//   - toPorts[].rules.dns (matchName, matchPattern, with package dnsmatch's
//     meaning) only in egress allows, on UDP/TCP ports that are neither 0
//     nor a range; protocol ANY is UDP and TCP there. The endpoint's queries
//     on those ports go through the DNS proxy, which passes a query when an
//     allow that matches the server and covers the port has no rules.dns
//     there (an L3/L4 allow of the same peer and port makes the DNS rules
//     moot, as Cilium merges them) or selects the name (EvaluateDNS).
//   - toFQDNs selects peers outside the cluster (world, CIDR identities)
//     whose address a DNS answer the node's proxy saw, for any endpoint,
//     gave for a selected name (Cilium collects them node-wide); only in
//     egress allows and never beside another L3 selector. Like Cilium,
//     it learns addresses only from queries the proxy sees: the endpoint
//     needs a rules.dns allow for its lookups.
//   - Neither applies to host policies (nodeSelector): refused.
package policy
