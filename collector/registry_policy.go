package collector

import (
	"net/netip"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// The registry is the enforcer's view of the node's endpoints.
var _ policystore.Endpoints = (*Registry)(nil)

// PolicyEndpoints lists the endpoints for policy: id (host-side ifindex),
// identity, labels, addresses and audit mode; then the host endpoint on
// every host interface.
func (r *Registry) PolicyEndpoints() []policystore.Endpoint {
	out := make([]policystore.Endpoint, len(r.endpoints), len(r.endpoints)+len(r.hostIfs))
	for _, h := range r.hostIfs {
		out = append(out, policystore.Endpoint{Name: "host:" + h.Name, ID: h.Index,
			Identity: uint32(identity.Host), Labels: r.hostLabels, Host: true})
	}
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

// RemoteNodes lists the other nodes' addresses, as declared.
func (r *Registry) RemoteNodes() []netip.Prefix {
	return append([]netip.Prefix(nil), r.remoteNodes...)
}

// Identities lists the identities of the registry's allocator: reserved
// ones and every allocated one, by id.
func (r *Registry) Identities() []identity.Identity { return r.ids.List() }
