package policy

import (
	"net/netip"
	"sort"
)

// Endpoint is the local endpoint a decision is made for.
type Endpoint struct {
	ID        uint32
	Namespace string
	Labels    []string // "source:key=value"; reserved:host marks the host endpoint
}

// Peer is the remote side of a flow: its identity and labels, and its
// address (used by CIDR rules when the peer is outside the cluster, i.e.
// its labels include reserved:world), and the names DNS answers the node
// saw gave that address (used by toFQDNs rules, outside the cluster too).
type Peer struct {
	Identity uint32
	Labels   []string
	IP       netip.Addr
	Names    []string
}

// Verdict is the outcome of Evaluate.
type Verdict uint8

// Verdicts.
const (
	// NotSelected: no rule puts the endpoint in default deny in this
	// direction and none allows or denies the flow: allowed.
	NotSelected Verdict = iota
	// Allowed by at least one allow rule and no deny rule.
	Allowed
	// Denied: default deny, no allow rule matched.
	Denied
	// DeniedByDeny: an explicit deny rule matched (it wins over allows).
	DeniedByDeny
	// DeniedL7: L3/L4 allowed the connection, and L7 rules apply to it,
	// but none matched the request (EvaluateHTTP).
	DeniedL7
)

func (v Verdict) String() string {
	return [...]string{"not-selected", "allowed", "denied", "denied-by-deny", "denied-l7"}[v]
}

// Forwarded reports whether the verdict lets the traffic through.
func (v Verdict) Forwarded() bool { return v == NotSelected || v == Allowed }

// Decision is a verdict with the deciding policies (sorted by ID.Less):
// for Allowed every policy with a matching allow, for DeniedByDeny every
// policy with a matching deny.
type Decision struct {
	Verdict  Verdict
	Policies []ID
}

// Refs are the deciding policies' refs ("namespace/name"), in order.
func (d Decision) Refs() []string {
	var out []string
	for _, id := range d.Policies {
		out = append(out, id.Ref())
	}
	return out
}

// Evaluate is the reference decision for a flow in direction dir of the
// local endpoint with remote: protocol proto, destination port port
// (ignored for ICMP), ICMP type icmpType (ICMP and ICMPv6 only). It is
// deliberately plain; compiled forms are tested against it.
func Evaluate(policies []*Policy, local Endpoint, remote Peer, dir Direction, proto uint8, port uint16, icmpType uint8) Decision {
	labels := local.labels()
	if proto == 1 || proto == 58 {
		port = uint16(icmpType)
	}
	selected := false
	allow, deny := map[ID]bool{}, map[ID]bool{}
	for _, pol := range policies {
		for i := range pol.Rules {
			r := &pol.Rules[i]
			if !r.Selects(labels) {
				continue
			}
			d := r.Dir(dir)
			selected = selected || d.DefaultDeny
			for _, pr := range d.Allow {
				if pr.Matches(remote, proto, port) {
					allow[pol.ID()] = true
				}
			}
			for _, pr := range d.Deny {
				if pr.Matches(remote, proto, port) {
					deny[pol.ID()] = true
				}
			}
		}
	}
	switch {
	case len(deny) > 0:
		return Decision{Verdict: DeniedByDeny, Policies: sortedKeys(deny)}
	case len(allow) > 0:
		return Decision{Verdict: Allowed, Policies: sortedKeys(allow)}
	case selected:
		return Decision{Verdict: Denied}
	}
	return Decision{Verdict: NotSelected}
}

func sortedKeys(m map[ID]bool) []ID {
	out := make([]ID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// labels adds the namespace label when the endpoint's labels lack it.
func (e Endpoint) labels() []string {
	if e.Namespace == "" {
		return e.Labels
	}
	nl := "k8s:" + NamespaceLabel + "=" + e.Namespace
	for _, l := range e.Labels {
		if l == nl {
			return e.Labels
		}
	}
	return append(append([]string(nil), e.Labels...), nl)
}

// SelectsEndpoint reports whether the rule applies to the local endpoint.
func (r *Rule) SelectsEndpoint(e Endpoint) bool { return r.Selects(e.labels()) }

// Selects reports whether the rule applies to a local endpoint with these
// labels: host rules (nodeSelector) only to the host endpoint, others only
// to non-host endpoints.
func (r *Rule) Selects(labels []string) bool {
	isHost := false
	for _, l := range labels {
		if l == "reserved:host" {
			isHost = true
		}
	}
	return r.Host == isHost && r.Subject.Matches(labels)
}

// Matches reports whether the peer rule matches the remote peer, protocol
// and port (the ICMP type for ICMP).
func (pr *PeerRule) Matches(remote Peer, proto uint8, port uint16) bool {
	return pr.matchesPort(proto, port) && pr.matchesPeer(remote)
}

func (pr *PeerRule) matchesPort(proto uint8, port uint16) bool {
	if len(pr.Ports) == 0 {
		return true
	}
	for _, r := range pr.Ports {
		if r.Proto == proto && r.Lo <= port && port <= r.Hi {
			return true
		}
	}
	return false
}

func (pr *PeerRule) matchesPeer(remote Peer) bool {
	for _, p := range pr.Peers {
		if p.MatchesPeer(remote) {
			return true
		}
	}
	return false
}

// MatchesPeer reports whether the peer selector selects remote.
func (p *PeerSelector) MatchesPeer(remote Peer) bool {
	switch {
	case p.All:
		return true
	case p.Selector != nil:
		return p.Selector.Matches(remote.Labels)
	case p.CIDR.IsValid():
		if !isWorld(remote.Labels) || !remote.IP.IsValid() {
			return false
		}
		ip := remote.IP.Unmap()
		if !p.CIDR.Contains(ip) {
			return false
		}
		for _, e := range p.Except {
			if e.Contains(ip) {
				return false
			}
		}
		return true
	case p.FQDN != nil:
		return isWorld(remote.Labels) && remote.IP.IsValid() && p.selectsName(remote.Names)
	}
	return false
}

func isWorld(labels []string) bool {
	for _, l := range labels {
		if l == "reserved:world" {
			return true
		}
	}
	return false
}
