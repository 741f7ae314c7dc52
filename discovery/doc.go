// Package discovery owns what the watchers of orchestrators and container
// engines tell the rest of Periscope: an endpoint (a pod or a container)
// appeared, changed or went away, and a policy object appeared, changed or
// went away. The watchers live in subpackages (kubernetes, docker); they
// turn their source's objects into these events and find each endpoint's
// host-side interface (hostveth).
//
// It must not attach programs, allocate identities or compile policy: the
// collector and the enforcer consume the events and do that.
package discovery
