package discovery

// PolicyEvent is one change of a policy object of the orchestrator, or
// (Kind Synced) the end of a watcher's first complete listing.
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
	// Present, in a Synced event only, lists every policy object the
	// orchestrator has now (refused ones included): any other object the
	// sink keeps from this watcher's source was deleted while nobody
	// watched.
	Present []PolicyObject
}

// PolicyObject names one policy object of the orchestrator.
type PolicyObject struct {
	// Kind, Namespace (empty for cluster-wide kinds) and Name, as in
	// PolicyEvent.
	Kind, Namespace, Name string
}

// PolicySink receives a watcher's policy events, one call at a time. It
// returns an error when it refuses the object (it is then not in force);
// the watcher reports that on the object and in its log. A refused object
// stays refused until it changes.
//
// Once the watcher has listed every object of its source (before it
// reports any of them), it sends one event of Kind Synced: the sink
// removes whatever it still keeps from that source that the listing does
// not name (objects deleted while the sink was not watching).
type PolicySink interface {
	PolicyChanged(PolicyEvent) error
}

// PolicyFunc adapts a function to a PolicySink.
type PolicyFunc func(PolicyEvent) error

// PolicyChanged calls f.
func (f PolicyFunc) PolicyChanged(ev PolicyEvent) error { return f(ev) }
