// Package kubernetes watches a Kubernetes API server with client-go
// informers and turns what it sees into discovery events: the pods
// scheduled on this node (with Cilium's labels and the host-side veth
// found from their addresses) into endpoint events, and
// CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and NetworkPolicy
// objects into policy events. A policy the sink refuses is reported as a
// Warning Event on the object.
//
// It must not attach programs, allocate identities or parse policy: the
// sinks do that. It writes nothing to the API server but Events.
package kubernetes
