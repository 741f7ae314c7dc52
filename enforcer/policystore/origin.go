package policystore

import "github.com/periscope-dev/periscope/discovery"

// Origin says where an applied policy came from. The zero Origin is a
// client's (`periscope policy apply`, the policy API): only a client
// removes it. A policy from an orchestrator's object (PolicyChanged)
// names the watcher's source and the object, so that the objects deleted
// while the collector was down can be told from the rest when the watcher
// next lists its source (a Synced event).
//
// Policies persisted before origins were (no origins in revisions.json)
// load as a client's: they stay until deleted by hand or replaced by an
// object of the same kind, namespace and name.
type Origin struct {
	// Source is the watcher's source ("k8s"); empty for a client's.
	Source string `json:"source,omitempty"`
	// Kind, Namespace and Name name the object.
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// OriginK8s is the Origin.Source of policies from Kubernetes objects.
const OriginK8s = "k8s"

// originOf is the origin of the policy of a watcher's event.
func originOf(ev discovery.PolicyEvent) Origin {
	return Origin{Source: OriginK8s, Kind: ev.ObjectKind, Namespace: ev.Namespace, Name: ev.Name}
}

// object names the origin's object as a watcher's listing does.
func (o Origin) object() discovery.PolicyObject {
	return discovery.PolicyObject{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}
