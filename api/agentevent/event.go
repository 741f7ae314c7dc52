package agentevent

import (
	"encoding/json"
	"fmt"
	"time"
)

// Type is what happened, numbered as Hubble's flow.AgentEventType.
type Type uint8

// The types Periscope reports.
const (
	TypeUnknown     Type = 0
	AgentStarted    Type = 2
	PolicyUpdated   Type = 3
	PolicyDeleted   Type = 4
	EndpointCreated Type = 7
	EndpointDeleted Type = 8
)

// typeNames are Hubble's names of the types, as on the wire.
var typeNames = map[Type]string{
	TypeUnknown:     "AGENT_EVENT_UNKNOWN",
	AgentStarted:    "AGENT_STARTED",
	PolicyUpdated:   "POLICY_UPDATED",
	PolicyDeleted:   "POLICY_DELETED",
	EndpointCreated: "ENDPOINT_CREATED",
	EndpointDeleted: "ENDPOINT_DELETED",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("AGENT_EVENT_TYPE_%d", uint8(t))
}

// MarshalText writes the type's name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a type's name.
func (t *Type) UnmarshalText(b []byte) error {
	for typ, n := range typeNames {
		if n == string(b) {
			*t = typ
			return nil
		}
	}
	return fmt.Errorf("unknown agent event type %q", b)
}

// Event is one agent event. Exactly one of the parts below Type is set, as
// Type says: Start for AgentStarted, Policy for PolicyUpdated and
// PolicyDeleted, Endpoint for EndpointCreated and EndpointDeleted.
type Event struct {
	// Time is when it happened; the Log sets it when it is zero.
	Time time.Time `json:"time"`
	// NodeName is the node it happened on; the Log sets it.
	NodeName string `json:"node_name"`
	Type     Type   `json:"type"`
	// Start is when the agent started.
	Start time.Time `json:"start_time,omitzero"`
	// Policy is the policy updated or deleted.
	Policy *Policy `json:"policy,omitempty"`
	// Endpoint is the endpoint created or deleted.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// Policy is a policy change, as Hubble's PolicyUpdateNotification.
type Policy struct {
	// Labels name the policy as Cilium labels its rules (PolicyLabels).
	Labels []string `json:"labels"`
	// Revision is the policy store's revision after the change.
	Revision uint64 `json:"revision"`
	// RuleCount is how many rules the policy holds.
	RuleCount int64 `json:"rule_count"`
}

// Endpoint is an endpoint change, as Hubble's EndpointUpdateNotification.
type Endpoint struct {
	ID        uint64   `json:"id"`
	Labels    []string `json:"labels,omitempty"`
	PodName   string   `json:"pod_name,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
}

// Cilium's label keys naming the policy a rule comes from
// (pkg/k8s/apis/cilium.io/utils, pkg/policy/api's derived-from).
const (
	labelPolicyName        = "k8s:io.cilium.k8s.policy.name="
	labelPolicyNamespace   = "k8s:io.cilium.k8s.policy.namespace="
	labelPolicyDerivedFrom = "k8s:io.cilium.k8s.policy.derived-from="
)

// PolicyLabels are the labels Cilium gives the rules of a policy: where it
// is derived from (its kind), its name and, for a namespaced policy, its
// namespace.
func PolicyLabels(kind, namespace, name string) []string {
	l := []string{labelPolicyDerivedFrom + kind, labelPolicyName + name}
	if namespace != "" {
		l = append(l, labelPolicyNamespace+namespace)
	}
	return l
}

// PolicyChange is the event of a policy updated (typ PolicyUpdated) or
// deleted (PolicyDeleted) at the store's revision.
func PolicyChange(typ Type, kind, namespace, name string, revision uint64, rules int) Event {
	return Event{Type: typ, Policy: &Policy{Labels: PolicyLabels(kind, namespace, name), Revision: revision, RuleCount: int64(rules)}}
}

// AppendJSON appends e as one JSON object (no newline).
func AppendJSON(b []byte, e *Event) ([]byte, error) {
	j, err := json.Marshal(e)
	if err != nil {
		return b, fmt.Errorf("encode agent event: %w", err)
	}
	return append(b, j...), nil
}

// ParseJSON reads one JSON object into e.
func ParseJSON(b []byte, e *Event) error {
	*e = Event{}
	if err := json.Unmarshal(b, e); err != nil {
		return fmt.Errorf("agent event: %w", err)
	}
	return nil
}

// Appender takes events: the collector's Log, which the policy store and
// the collector (for its endpoints) append to. Append must not block.
type Appender interface {
	Append(e Event)
}
