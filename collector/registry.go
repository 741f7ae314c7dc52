package collector

import (
	"fmt"
	"net/netip"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// Topology is the node's endpoints resolved against the kernel: host-side
// interface indexes and addresses. Resolve builds it from a Config; tests and
// the demo may build it directly.
type Topology struct {
	// NodeName is the node's name, set on every flow.
	NodeName string
	// Endpoints are the resolved endpoints.
	Endpoints []ResolvedEndpoint
	// HostInterfaces are extra host interfaces watched by the datapath.
	HostInterfaces []HostInterface
	// HostAddrs are the host namespace's own addresses, used to tell the
	// direction of flows seen on host interfaces and of SOCK flows.
	HostAddrs []netip.Addr
	// ClusterName is the cluster's name (empty: DefaultClusterName).
	ClusterName string
	// NamespaceLabels are the declared namespaces' labels, by namespace.
	NamespaceLabels map[string]map[string]string
	// NodeLabels are the node's labels (the host endpoint's).
	NodeLabels map[string]string
	// RemoteNodes are the other nodes' addresses (remote-node identity).
	RemoteNodes []netip.Prefix
}

// ResolvedEndpoint is an endpoint with its host-side veth and addresses.
type ResolvedEndpoint struct {
	// Config is the endpoint's declaration.
	Config EndpointConfig
	// HostIfIndex and HostIfName identify the host-side veth.
	HostIfIndex uint32
	HostIfName  string
	// IPs are the endpoint's addresses.
	IPs []netip.Addr
	// LinkLocal are the link-local addresses of the endpoint's interface
	// (fe80::/10, 169.254.0.0/16): its own, though not unique on the node.
	LinkLocal []netip.Addr
	// Kept marks an endpoint of the previous run the endpoints file no
	// longer declares: enforced as before until explicitly removed.
	Kept bool
	// Discovered, when set, says which watcher reported the endpoint (a
	// pod, a container) and carries its labels; nil for a declared one.
	Discovered *Discovered
}

// Discovered is what a watcher (discovery/kubernetes, discovery/docker)
// says of an endpoint beyond its name, interface and addresses.
type Discovered struct {
	// Source and ID name the endpoint in its watcher
	// (discovery.Endpoint.Source, .ID).
	Source string `json:"source"`
	ID     string `json:"id"`
	// Labels are its identity labels as the watcher made them, Cilium's
	// "source:key=value", sorted: used as they are.
	Labels []string `json:"labels"`
}

// HostInterface is a host interface watched by the datapath.
type HostInterface struct {
	Index uint32
	Name  string
}

// endpointInfo is the registry's prebuilt view of one endpoint; lookups hand
// out its api.Endpoint, whose strings and slices are shared by every flow.
type endpointInfo struct {
	endpoint    api.Endpoint
	hostIfIndex uint32
	hostIfName  string
	ips         []netip.Addr
	linkLocal   []netip.Addr
	audit       bool
	kept        bool
	discovered  *Discovered
}

// Registry answers endpoint lookups by host interface index and by IP, and
// enriches flows in place. It is immutable after NewRegistry, so concurrent
// lookups need no locking.
type Registry struct {
	nodeName     string
	clusterName  string
	byIfIndex    map[uint32]*endpointInfo
	byIP         map[netip.Addr]*endpointInfo
	byLinkLocal  map[netip.Addr]*endpointInfo // nil value: several endpoints share it
	peers        reservedPeers
	ifNames      map[uint32]string
	hostAddrs    map[netip.Addr]struct{}
	endpoints    []*endpointInfo
	hostIfs      []HostInterface
	ids          *identity.Allocator
	hostAddrList []netip.Addr
	hostLabels   []string
	remoteNodes  []netip.Prefix
}

// NewRegistry builds the registry for a topology, with identities kept in
// memory only.
func NewRegistry(t *Topology) (*Registry, error) {
	ids, _ := identity.NewAllocator("")
	return NewRegistryWith(t, ids)
}

// NewRegistryWith builds the registry for a topology; ids allocates the
// endpoints' security identities.
func NewRegistryWith(t *Topology, ids *identity.Allocator) (*Registry, error) {
	r := &Registry{
		nodeName:     t.NodeName,
		byIfIndex:    make(map[uint32]*endpointInfo, len(t.Endpoints)),
		byIP:         make(map[netip.Addr]*endpointInfo),
		byLinkLocal:  make(map[netip.Addr]*endpointInfo),
		peers:        newReservedPeers(),
		ifNames:      make(map[uint32]string, len(t.Endpoints)+len(t.HostInterfaces)),
		hostAddrs:    make(map[netip.Addr]struct{}, len(t.HostAddrs)),
		hostIfs:      append([]HostInterface(nil), t.HostInterfaces...),
		ids:          ids,
		hostAddrList: append([]netip.Addr(nil), t.HostAddrs...),
	}
	cluster := t.ClusterName
	if cluster == "" {
		cluster = DefaultClusterName
	}
	r.clusterName = cluster
	r.hostLabels = hostLabels(t.NodeLabels)
	r.remoteNodes = append([]netip.Prefix(nil), t.RemoteNodes...)
	for _, re := range t.Endpoints {
		ns := re.Config.namespace()
		labels, workload := endpointIdentityLabels(re, cluster, t.NamespaceLabels[ns])
		ident, err := allocateIdentity(ids, labels)
		if err != nil {
			return nil, err
		}
		info := &endpointInfo{
			endpoint: api.Endpoint{
				// The host-side ifindex is a stable local id for the
				// endpoint's lifetime, like Cilium's endpoint id.
				ID:        re.HostIfIndex,
				Identity:  ident,
				Namespace: ns,
				Labels:    labels,
				PodName:   re.Config.Name,
				Workload:  workload,
			},
			hostIfIndex: re.HostIfIndex,
			hostIfName:  re.HostIfName,
			audit:       re.Config.Audit,
			kept:        re.Kept,
			discovered:  re.Discovered,
			ips:         append([]netip.Addr(nil), re.IPs...),
		}
		for _, a := range re.LinkLocal {
			a = a.Unmap()
			info.linkLocal = append(info.linkLocal, a)
			if _, seen := r.byLinkLocal[a]; seen {
				r.byLinkLocal[a] = nil // ambiguous: only the observing interface can tell
				continue
			}
			r.byLinkLocal[a] = info
		}
		if re.HostIfIndex != 0 {
			if prev, dup := r.byIfIndex[re.HostIfIndex]; dup {
				return nil, fmt.Errorf("endpoints %q and %q share host interface index %d",
					prev.endpoint.PodName, re.Config.Name, re.HostIfIndex)
			}
			r.byIfIndex[re.HostIfIndex] = info
			r.ifNames[re.HostIfIndex] = re.HostIfName
		}
		for _, ip := range re.IPs {
			ip = ip.Unmap()
			if prev, dup := r.byIP[ip]; dup {
				return nil, fmt.Errorf("endpoints %q and %q share IP %s",
					prev.endpoint.PodName, re.Config.Name, ip)
			}
			r.byIP[ip] = info
		}
		r.endpoints = append(r.endpoints, info)
	}
	for _, hi := range t.HostInterfaces {
		r.ifNames[hi.Index] = hi.Name
	}
	for _, a := range t.HostAddrs {
		r.hostAddrs[a.Unmap()] = struct{}{}
	}
	return r, nil
}

// NodeName is the node name the registry sets on flows.
func (r *Registry) NodeName() string { return r.nodeName }

// ClusterName is the cluster the node is in (DefaultClusterName unless the
// topology names one): its endpoints' io.cilium.k8s.policy.cluster label.
func (r *Registry) ClusterName() string { return r.clusterName }

// Enrich fills a flow's endpoints (by IP; a link-local address by the
// interface it belongs to), node name, interface names and traffic
// directions (of its own observation point and of Other's), in place. A
// peer that is no endpoint gets its reserved identity, as in Cilium (see
// peer). An L7 record keeps the traffic direction its producer set: the
// proxy knows on which side of the endpoint it sits. It allocates nothing.
func (r *Registry) Enrich(f *api.Flow) {
	f.NodeName = r.nodeName
	f.Interface.Name = r.ifNames[f.Interface.Index]

	src := r.lookup(f.IP.Source, f.Interface.Index)
	dst := r.lookup(f.IP.Destination, f.Interface.Index)
	f.Source = r.endpointOrPeer(src, f.IP.Source)
	f.Destination = r.endpointOrPeer(dst, f.IP.Destination)
	if f.Paired() {
		f.Other.Interface.Name = r.ifNames[f.Other.Interface.Index]
		f.Other.TrafficDirection = r.direction(f, f.Other.Interface.Index, src, dst)
	}
	if f.Type == api.FlowTypeL7 && f.TrafficDirection != api.TrafficDirectionUnknown {
		return
	}
	f.TrafficDirection = r.direction(f, f.Interface.Index, src, dst)
}

// direction is the traffic direction of f seen at interface ifindex: of
// the endpoint behind it, whose side of f says which; from the host's point
// of view on host interfaces, for SOCK flows, and at a veth whose endpoint
// is on neither side.
func (r *Registry) direction(f *api.Flow, ifindex uint32, src, dst *endpointInfo) api.TrafficDirection {
	if observed := r.byIfIndex[ifindex]; observed != nil && f.Type != api.FlowTypeSock {
		switch observed {
		case src:
			return api.TrafficDirectionEgress
		case dst:
			return api.TrafficDirectionIngress
		}
	}
	if _, local := r.hostAddrs[f.IP.Source.Unmap()]; local {
		return api.TrafficDirectionEgress
	}
	return api.TrafficDirectionIngress
}

func endpointOf(info *endpointInfo) api.Endpoint {
	if info == nil {
		return api.Endpoint{}
	}
	return info.endpoint
}

// LookupIP returns the endpoint owning ip (a link-local address when only
// one endpoint has it).
func (r *Registry) LookupIP(ip netip.Addr) (api.Endpoint, bool) {
	info := r.lookup(ip, 0)
	return endpointOf(info), info != nil
}

// LookupIfIndex returns the endpoint whose host-side veth has index ifindex.
func (r *Registry) LookupIfIndex(ifindex uint32) (api.Endpoint, bool) {
	info := r.byIfIndex[ifindex]
	return endpointOf(info), info != nil
}

// Interfaces lists the host interfaces the datapath should attach to: every
// endpoint's host-side veth, then the extra host interfaces.
func (r *Registry) Interfaces() []string {
	out := make([]string, 0, len(r.endpoints)+len(r.hostIfs))
	for _, e := range r.endpoints {
		if e.hostIfName != "" {
			out = append(out, e.hostIfName)
		}
	}
	for _, h := range r.hostIfs {
		out = append(out, h.Name)
	}
	return out
}

// EndpointStatus describes one endpoint in /api/v1/status.
type EndpointStatus struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace"`
	Identity  uint32   `json:"identity"`
	Interface string   `json:"interface"`
	IfIndex   uint32   `json:"ifindex"`
	IPs       []string `json:"ips"`
	LinkLocal []string `json:"link_local,omitempty"`
	Labels    []string `json:"labels"`
	// Kept says why an endpoint the endpoints file does not declare is
	// still enforced; empty for a declared one.
	Kept string `json:"kept,omitempty"`
	// Source names the watcher that reported the endpoint ("k8s",
	// "docker"); empty for one of the endpoints file.
	Source string `json:"source,omitempty"`
}

// Endpoints describes the registered endpoints.
func (r *Registry) Endpoints() []EndpointStatus {
	out := make([]EndpointStatus, 0, len(r.endpoints))
	for _, e := range r.endpoints {
		ips := make([]string, len(e.ips))
		for i, ip := range e.ips {
			ips[i] = ip.String()
		}
		var linkLocal []string
		for _, ip := range e.linkLocal {
			linkLocal = append(linkLocal, ip.String())
		}
		out = append(out, EndpointStatus{
			Name:      e.endpoint.PodName,
			Namespace: e.endpoint.Namespace,
			Identity:  e.endpoint.Identity,
			Interface: e.hostIfName,
			IfIndex:   e.hostIfIndex,
			IPs:       ips,
			LinkLocal: linkLocal,
			Labels:    e.endpoint.Labels,
			Kept:      keptNote(e),
			Source:    e.source(),
		})
	}
	return out
}
