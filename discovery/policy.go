package discovery

// PolicyEvent is one change of a policy object of the orchestrator.
type PolicyEvent struct {
	Kind EventKind
	// Kind of the object: "CiliumNetworkPolicy",
	// "CiliumClusterwideNetworkPolicy" or "NetworkPolicy".
	ObjectKind string
	// Namespace (empty for cluster-wide kinds) and Name of the object.
	Namespace, Name string
	// Source is the object as JSON (a Deleted event carries the last state
	// seen), in the shape `periscope policy apply` reads.
	Source []byte
}

// PolicySink receives a watcher's policy events, one call at a time. It
// returns an error when it refuses the object (it is then not in force);
// the watcher reports that on the object and in its log. A refused object
// stays refused until it changes.
type PolicySink interface {
	PolicyChanged(PolicyEvent) error
}

// PolicyFunc adapts a function to a PolicySink.
type PolicyFunc func(PolicyEvent) error

// PolicyChanged calls f.
func (f PolicyFunc) PolicyChanged(ev PolicyEvent) error { return f(ev) }
