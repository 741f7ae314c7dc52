package discovery

import (
	"net/netip"
	"slices"
)

// EventKind says what happened to an endpoint or a policy.
type EventKind int

// The kinds of change a watcher reports.
const (
	// Added: first seen (or seen again after a Deleted).
	Added EventKind = iota + 1
	// Updated: something the event carries changed.
	Updated
	// Deleted: gone; the event carries the last state seen.
	Deleted
	// Synced: a policy watcher listed every object of its source
	// (PolicyEvent.Present); never an endpoint's.
	Synced
)

// String names the kind as logs print it.
func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	case Synced:
		return "synced"
	}
	return "unknown"
}

// Interface names a network interface of the host's network namespace.
type Interface struct {
	Name  string
	Index int
}

// Endpoint is a workload as a watcher sees it: a pod or a container with
// its addresses, labels and the host-side veth its traffic crosses.
type Endpoint struct {
	// Source names the watcher: "k8s" or "docker" (Podman serves the Docker
	// API, and reports "docker" too).
	Source string
	// ID is unique within Source and stable for the endpoint's life: the
	// pod's "namespace/name", the container's id.
	ID string
	// Name and Namespace name the endpoint as flows show it: the pod's name
	// and namespace; the container's name and its compose project (or
	// DefaultContainerNamespace).
	Name, Namespace string
	// Labels are Cilium-style "source:key=value" labels, sorted.
	Labels []string
	// IPs are the endpoint's addresses, sorted.
	IPs []netip.Addr
	// HostNetwork is true for a pod sharing the host's network namespace:
	// it is the host, and has no interface of its own.
	HostNetwork bool
	// Interface is the host side of the endpoint's veth; zero when
	// HostNetwork, or when no interface carries the endpoint's addresses.
	Interface Interface
}

// Equal reports whether two endpoints carry the same state.
func (e Endpoint) Equal(o Endpoint) bool {
	return e.Source == o.Source && e.ID == o.ID && e.Name == o.Name && e.Namespace == o.Namespace &&
		slices.Equal(e.Labels, o.Labels) && slices.Equal(e.IPs, o.IPs) &&
		e.HostNetwork == o.HostNetwork && e.Interface == o.Interface
}

// EndpointEvent is one change of an endpoint.
type EndpointEvent struct {
	Kind     EventKind
	Endpoint Endpoint
}

// EndpointSink receives a watcher's endpoint events, one call at a time and
// in the order they happened. A call must not block for long: the watcher
// waits for it.
type EndpointSink interface {
	EndpointChanged(EndpointEvent)
}

// EndpointFunc adapts a function to an EndpointSink.
type EndpointFunc func(EndpointEvent)

// EndpointChanged calls f.
func (f EndpointFunc) EndpointChanged(ev EndpointEvent) { f(ev) }
