package collector

import (
	"net/netip"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// Peers that are no endpoint of the node carry Cilium's reserved
// identities, as Hubble shows them: the host's own addresses (its
// link-local ones too) are reserved:host (1); the other nodes' addresses
// (Topology.RemoteNodes) reserved:remote-node (6); every other address is
// reserved:world (2), the identity Periscope's policy gives an address it
// knows nothing of (Cilium in dual-stack mode says world-ipv4 (9) and
// world-ipv6 (10) instead; Periscope's ipcache, like single-stack Cilium's,
// has world only). Multicast groups (ff00::/8, 224.0.0.0/4) are world too:
// Cilium's ipcache has no entry for them either; they are no workload, and
// the web UI's service map draws no node for them. A flow with no address
// on a side (or the unspecified address, as in duplicate address
// detection) has no identity there.

// reservedPeers are the api.Endpoints of reserved identities the registry
// hands out, built once: their label slices are shared by every flow.
type reservedPeers struct {
	host, remoteNode, world api.Endpoint
}

func newReservedPeers() reservedPeers {
	reserved := func(id identity.ID) api.Endpoint {
		label, _ := identity.ReservedLabel(id)
		return api.Endpoint{Identity: uint32(id), Labels: []string{label}}
	}
	return reservedPeers{host: reserved(identity.Host), remoteNode: reserved(identity.RemoteNode), world: reserved(identity.World)}
}

// lookup finds the endpoint owning address a. A link-local address belongs
// to the endpoint whose interface has it: the one observed at ifindex when
// it has it, else the only endpoint that has it.
func (r *Registry) lookup(a netip.Addr, ifindex uint32) *endpointInfo {
	a = a.Unmap()
	if !a.IsLinkLocalUnicast() {
		return r.byIP[a]
	}
	if e := r.byIfIndex[ifindex]; e != nil {
		for _, ll := range e.linkLocal {
			if ll == a {
				return e
			}
		}
	}
	return r.byLinkLocal[a]
}

// endpointOrPeer is info's endpoint, or the reserved identity of a, a peer
// that is no endpoint.
func (r *Registry) endpointOrPeer(info *endpointInfo, a netip.Addr) api.Endpoint {
	if info != nil {
		return info.endpoint
	}
	return r.peer(a)
}

// peer is the reserved identity of an address no endpoint owns.
func (r *Registry) peer(a netip.Addr) api.Endpoint {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return api.Endpoint{}
	}
	if _, local := r.hostAddrs[a]; local {
		return r.peers.host
	}
	for _, p := range r.remoteNodes {
		if p.Contains(a) {
			return r.peers.remoteNode
		}
	}
	return r.peers.world
}
