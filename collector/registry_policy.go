package collector

import (
	"net/netip"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// The registry is the enforcer's view of the node's endpoints.
var _ policystore.Endpoints = (*Registry)(nil)

// PolicyEndpoints lists the endpoints for policy: id (host-side ifindex),
// identity, labels, addresses and audit mode.
func (r *Registry) PolicyEndpoints() []policystore.Endpoint {
	out := make([]policystore.Endpoint, len(r.endpoints))
	for i, e := range r.endpoints {
		out[i] = policystore.Endpoint{
			Name:      e.endpoint.PodName,
			ID:        e.hostIfIndex,
			Identity:  e.endpoint.Identity,
			Namespace: e.endpoint.Namespace,
			Labels:    e.endpoint.Labels,
			IPs:       e.ips,
			Audit:     e.audit,
		}
	}
	return out
}

// HostAddrs lists the host namespace's own addresses.
func (r *Registry) HostAddrs() []netip.Addr {
	return append([]netip.Addr(nil), r.hostAddrList...)
}

// Identities lists the identities of the registry's allocator: reserved
// ones and every allocated one, by id.
func (r *Registry) Identities() []identity.Identity { return r.ids.List() }
