package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// The collector's endpoints change only by explicit operations: at start
// the endpoints file's declarations, plus the endpoints the previous run
// enforced that the file no longer declares (kept, from
// Options.EndpointState); afterwards RemoveEndpoint (the API's DELETE
// /api/v1/endpoints/{namespace}/{name}, `periscope endpoint remove`).
// Dropping a declaration from the file and restarting never stops
// enforcing an endpoint whose programs stay attached. Each change builds a
// new Registry (lookups never lock) and tells the OnEndpointsChange
// functions (the policy store recompiles), then detaches what is gone.

// ErrNoEndpoint is returned by RemoveEndpoint for an endpoint the
// collector does not have.
var ErrNoEndpoint = errors.New("no such endpoint")

var _ policystore.Endpoints = (*Collector)(nil)

// keptNote is what status says of a kept endpoint.
func keptNote(e *endpointInfo) string {
	if !e.kept {
		return ""
	}
	if e.discovered != nil {
		return fmt.Sprintf("reported by %s before the restart: kept and enforced until its watcher reports it again or it is removed (periscope endpoint remove %s/%s)",
			e.discovered.Source, e.endpoint.Namespace, e.endpoint.PodName)
	}
	return fmt.Sprintf("not in the endpoints file: kept from the previous run and enforced until removed (periscope endpoint remove %s/%s)",
		e.endpoint.Namespace, e.endpoint.PodName)
}

// withKeptEndpoints returns topo with the endpoints of state (the previous
// run's) that it does not declare, resolved again and marked Kept. A kept
// endpoint whose interface is gone (or whose name is now another device's)
// is forgotten: its programs went with it. One whose interface or
// addresses a declared endpoint has now is superseded by it. Both are
// logged.
func withKeptEndpoints(state []keptEndpoint, topo *Topology, resolve func(EndpointConfig) (ResolvedEndpoint, error),
	log *slog.Logger) *Topology {
	declared := map[string]bool{}
	ifaces := map[string]string{}
	ips := map[netip.Addr]string{}
	for _, re := range topo.Endpoints {
		key := re.Config.namespace() + "/" + re.Config.Name
		declared[key] = true
		ifaces[re.HostIfName] = key
		for _, ip := range re.IPs {
			ips[ip.Unmap()] = key
		}
	}
	out := *topo
	out.Endpoints = slices.Clone(topo.Endpoints)
	for _, k := range state {
		cfg := k.Config
		key := cfg.namespace() + "/" + cfg.Name
		if declared[key] {
			continue
		}
		re, err := resolve(cfg)
		if err != nil && cfg.NetNS != "" {
			// The namespace may be gone while the interface stays.
			cfg.NetNS = ""
			re, err = resolve(cfg)
		}
		if err == nil && re.HostIfIndex != k.IfIndex {
			err = fmt.Errorf("interface %s is another device now (index %d, was %d)", cfg.Interface, re.HostIfIndex, k.IfIndex)
		}
		if err != nil {
			log.Warn("endpoint of the previous run forgotten: its interface is gone, and its programs with it",
				"endpoint", key, "interface", cfg.Interface, "err", err)
			continue
		}
		if by, ok := ifaces[re.HostIfName]; ok {
			log.Warn("endpoint of the previous run superseded: the endpoints file declares its interface for another",
				"endpoint", key, "interface", re.HostIfName, "by", by)
			continue
		}
		if by := sharedIP(re.IPs, ips); by != "" {
			log.Warn("endpoint of the previous run superseded: the endpoints file declares its address for another",
				"endpoint", key, "by", by)
			continue
		}
		re.Kept = true
		re.Discovered = k.Discovered
		out.Endpoints = append(out.Endpoints, re)
		log.Warn("endpoint kept: the endpoints file no longer declares it; it stays enforced until removed (periscope endpoint remove)",
			"endpoint", key, "interface", re.HostIfName)
	}
	return &out
}

// sharedIP names the declared endpoint that has one of addrs, or "".
func sharedIP(addrs []netip.Addr, declared map[netip.Addr]string) string {
	for _, a := range addrs {
		if by, ok := declared[a.Unmap()]; ok {
			return by
		}
	}
	return ""
}

// OnEndpointsChange registers fn, called after each change of the
// endpoints with the new ones in place (the policy store's Refresh);
// its error is returned by the change, which is done anyway.
func (c *Collector) OnEndpointsChange(fn func() error) {
	c.endpointsMu.Lock()
	defer c.endpointsMu.Unlock()
	c.onChange = append(c.onChange, fn)
}

// RemoveEndpoint removes the endpoint namespace/name: the registry forgets
// it (flows no longer name it, policy no longer selects it), the state file
// with it, and the datapath is detached from its interface. It is how an
// endpoint stops being enforced; ErrNoEndpoint if there is none. Its
// identity is released once no endpoint used it for Options.IdentityGrace.
func (c *Collector) RemoveEndpoint(namespace, name string) (EndpointStatus, error) {
	c.endpointsMu.Lock()
	defer c.endpointsMu.Unlock()
	removed := c.statusOf(namespace, name)
	p := c.newPlan()
	if _, ok := p.remove(namespace, name); !ok {
		return EndpointStatus{}, fmt.Errorf("%w: %s/%s", ErrNoEndpoint, namespace, name)
	}
	if err := c.commit(p); err != nil {
		if errors.Is(err, errNotInForce) {
			return EndpointStatus{}, fmt.Errorf("remove endpoint %s/%s: %w", namespace, name, err)
		}
		return removed, fmt.Errorf("remove endpoint %s/%s: %w", namespace, name, err)
	}
	return removed, nil
}

// PutEndpoint puts re in force: it adds it, or replaces the endpoint of
// its namespace and name (its labels, addresses or interface changed:
// re-identified, policy re-applied). See plan.put for what it supersedes
// and commit for the order of the steps.
func (c *Collector) PutEndpoint(re ResolvedEndpoint) (EndpointStatus, error) {
	c.endpointsMu.Lock()
	defer c.endpointsMu.Unlock()
	ns, name := re.Config.namespace(), re.Config.Name
	p := c.newPlan()
	if err := p.put(re); err != nil {
		return EndpointStatus{}, fmt.Errorf("put endpoint %s/%s: %w", ns, name, err)
	}
	err := c.commit(p)
	if errors.Is(err, errNotInForce) {
		return EndpointStatus{}, fmt.Errorf("put endpoint %s/%s: %w", ns, name, err)
	}
	put := c.statusOf(ns, name)
	if err != nil {
		return put, fmt.Errorf("put endpoint %s/%s: %w", ns, name, err)
	}
	return put, nil
}

// statusOf describes the endpoint namespace/name of the registry in force.
func (c *Collector) statusOf(namespace, name string) EndpointStatus {
	return statusIn(c.Registry(), namespace, name)
}

// detachOne detaches the datapath from ifname if Run attached it.
func (c *Collector) detachOne(ifname string) error {
	if c.opts.Attacher == nil || ifname == "" {
		return nil
	}
	c.mu.Lock()
	i := slices.Index(c.attached, ifname)
	if i >= 0 {
		c.attached = slices.Delete(c.attached, i, i+1)
	}
	c.mu.Unlock()
	if i < 0 {
		return nil
	}
	return c.opts.Attacher.DetachInterface(ifname)
}

// PolicyEndpoints lists the current endpoints for policy (see
// Registry.PolicyEndpoints).
func (c *Collector) PolicyEndpoints() []policystore.Endpoint { return c.Registry().PolicyEndpoints() }

// LookupIP finds the endpoint owning ip among the current endpoints (the
// DNS proxy's lookup of the endpoint asking; see Registry.LookupIP).
func (c *Collector) LookupIP(ip netip.Addr) (api.Endpoint, bool) { return c.Registry().LookupIP(ip) }

// HostAddrs lists the host's own addresses.
func (c *Collector) HostAddrs() []netip.Addr { return c.Registry().HostAddrs() }

// Identities lists the identities the node knows.
func (c *Collector) Identities() []identity.Identity { return c.Registry().Identities() }

// RemoteNodes lists the other nodes' addresses.
func (c *Collector) RemoteNodes() []netip.Prefix { return c.Registry().RemoteNodes() }
