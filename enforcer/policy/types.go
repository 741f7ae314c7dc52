package policy

import (
	"net/netip"
	"strings"

	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
)

// Kind is the policy resource's kind.
type Kind string

// Supported kinds.
const (
	KindCNP  Kind = "CiliumNetworkPolicy"
	KindCCNP Kind = "CiliumClusterwideNetworkPolicy"
	KindKNP  Kind = "NetworkPolicy"
)

// Direction is seen from the local endpoint; values equal api.TrafficDirection.
type Direction uint8

// Directions.
const (
	Ingress Direction = 1
	Egress  Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return "unknown"
}

// Label keys (source k8s) Cilium gives every pod.
const (
	// NamespaceLabel carries the pod's namespace.
	NamespaceLabel = "io.kubernetes.pod.namespace"
	// NamespaceLabelsPrefix prefixes the labels of the pod's namespace:
	// io.cilium.k8s.namespace.labels.<key>=<value>.
	NamespaceLabelsPrefix = "io.cilium.k8s.namespace.labels."
	// ClusterLabel carries the cluster's name.
	ClusterLabel = "io.cilium.k8s.policy.cluster"
)

// Policy is one parsed policy resource in normalised form.
type Policy struct {
	Name      string
	Namespace string // empty for clusterwide policies
	Kind      Kind
	Source    string // "file:line:column" of the document
	Rules     []Rule
	// Revision is the policy store's revision that applied the policy (0
	// when parsed): flows name it beside the policy.
	Revision uint64
}

// ID identifies a policy: its kind, namespace and name.
type ID struct {
	Kind      Kind
	Namespace string // empty for clusterwide policies
	Name      string
}

// ID is the policy's ID.
func (p *Policy) ID() ID { return ID{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name} }

// Ref is "namespace/name", or "name" for a clusterwide policy.
func (id ID) Ref() string {
	if id.Namespace == "" {
		return id.Name
	}
	return id.Namespace + "/" + id.Name
}

// Less orders IDs by namespace, name, then kind.
func (id ID) Less(o ID) bool {
	if id.Namespace != o.Namespace {
		return id.Namespace < o.Namespace
	}
	if id.Name != o.Name {
		return id.Name < o.Name
	}
	return id.Kind < o.Kind
}

// Ref names the policy in flows and decisions: "namespace/name" for
// namespaced policies, "name" for clusterwide ones.
func (p *Policy) Ref() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// Rule is one rule (a Cilium spec, or a whole NetworkPolicy).
type Rule struct {
	// Subject selects the local endpoints the rule applies to.
	Subject Selector
	// Host makes the rule apply to the host endpoint (nodeSelector) instead
	// of pods: only local endpoints labelled reserved:host are subjects.
	Host bool
	// Ingress and Egress are the rule's two directions.
	Ingress, Egress DirectionRules
}

// Dir returns the rule's part for d.
func (r *Rule) Dir(d Direction) *DirectionRules {
	if d == Egress {
		return &r.Egress
	}
	return &r.Ingress
}

// DirectionRules is what a rule says about one direction.
type DirectionRules struct {
	// DefaultDeny puts selected endpoints in default deny in this direction.
	DefaultDeny bool
	// Allow and Deny list peer rules; a flow matching any Deny is dropped.
	Allow, Deny []PeerRule
}

// PeerRule allows (or denies) traffic with any of Peers on any of Ports.
type PeerRule struct {
	// Peers are alternatives; a rule with no peers matches nothing.
	Peers []PeerSelector
	// Ports are alternatives; empty means every protocol and port.
	Ports []PortRange
	// L7 are the toPorts items, with their L7 rules, when one has some;
	// empty when none has (see L7For).
	L7 []PortL7
	// DNS are the toPorts items, with their rules.dns, when one has some
	// (egress allows only; see DNSFor).
	DNS []PortDNS
}

// PeerSelector selects remote peers: every peer (All), peers whose identity labels
// match Selector, peers outside the cluster whose address is in CIDR but
// in none of Except, or peers outside the cluster whose address a DNS
// answer the node saw gave for a name FQDN selects (toFQDNs).
type PeerSelector struct {
	All      bool
	Selector *Selector
	CIDR     netip.Prefix
	Except   []netip.Prefix
	FQDN     *dnsmatch.Matcher
}

// PortRange is a protocol with an inclusive destination port range; for
// ICMP (1) and ICMPv6 (58) the "port" is the ICMP type. Lo=0, Hi=65535 is
// every port.
type PortRange struct {
	Proto  uint8
	Lo, Hi uint16
}

// Operator is a selector requirement's operator.
type Operator string

// Operators of label selectors.
const (
	OpIn           Operator = "In"
	OpNotIn        Operator = "NotIn"
	OpExists       Operator = "Exists"
	OpDoesNotExist Operator = "DoesNotExist"
)

// Requirement is one condition on a label key. Source "any" matches labels
// of every source except "cidr" (CIDR peers are selected with CIDR rules).
type Requirement struct {
	Source, Key string
	Op          Operator
	Values      []string
}

// Selector is a conjunction of requirements; no requirement selects all.
type Selector struct {
	Reqs []Requirement
}

// Matches reports whether labels ("source:key=value") satisfy every
// requirement.
func (s *Selector) Matches(labels []string) bool {
	for _, r := range s.Reqs {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

func (r *Requirement) matches(labels []string) bool {
	found, in := false, false
	for _, l := range labels {
		src, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if r.Source == "any" {
			if src == "cidr" {
				continue
			}
		} else if src != r.Source {
			continue
		}
		key, val, _ := strings.Cut(rest, "=")
		if key != r.Key {
			continue
		}
		found = true
		for _, v := range r.Values {
			if v == val {
				in = true
			}
		}
	}
	switch r.Op {
	case OpIn:
		return in
	case OpNotIn:
		return !in
	case OpExists:
		return found
	case OpDoesNotExist:
		return !found
	}
	return false
}

// hasKey reports whether some requirement constrains source:key (any
// source counts).
func (s *Selector) hasKey(source, key string) bool {
	for _, r := range s.Reqs {
		if r.Key == key && (r.Source == source || r.Source == "any") {
			return true
		}
	}
	return false
}

// hasSource reports whether some requirement is on a label of source.
func (s *Selector) hasSource(source string) bool {
	for _, r := range s.Reqs {
		if r.Source == source {
			return true
		}
	}
	return false
}

// hasKeyPrefix reports whether some requirement constrains a key of the
// k8s (or any) source starting with prefix.
func (s *Selector) hasKeyPrefix(prefix string) bool {
	for _, r := range s.Reqs {
		if strings.HasPrefix(r.Key, prefix) && (r.Source == "k8s" || r.Source == "any") {
			return true
		}
	}
	return false
}

// scopePeer scopes a fromEndpoints/toEndpoints selector of a policy in
// namespace ns (empty: clusterwide) whose subject is as written, as
// Cilium's getEndpointSelector does: a selector on a reserved label or on
// the pod namespace label is left alone; otherwise a namespaced policy's
// selector is confined to its namespace unless it selects by namespace
// labels (io.cilium.k8s.namespace.labels.*), and a clusterwide policy's
// selects pods only (namespace label Exists) unless its subject selects
// reserved:init.
func (s *Selector) scopePeer(ns string, subject Selector) {
	if s.hasSource("reserved") || s.hasKey("k8s", NamespaceLabel) {
		return
	}
	switch {
	case ns == "":
		if !subject.hasKey("reserved", "init") {
			s.Reqs = append(s.Reqs, namespaceExists())
		}
	case !s.hasKeyPrefix(NamespaceLabelsPrefix):
		s.Reqs = append(s.Reqs, namespaceIs(ns))
	}
}

func namespaceIs(ns string) Requirement {
	return Requirement{Source: "k8s", Key: NamespaceLabel, Op: OpIn, Values: []string{ns}}
}

func namespaceExists() Requirement {
	return Requirement{Source: "k8s", Key: NamespaceLabel, Op: OpExists}
}

func reservedSelector(name string) *Selector {
	return &Selector{Reqs: []Requirement{{Source: "reserved", Key: name, Op: OpExists}}}
}
