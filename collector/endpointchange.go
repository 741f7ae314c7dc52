package collector

import (
	"errors"
	"fmt"
	"slices"

	"github.com/periscope-dev/periscope/api/agentevent"
)

// A change of the endpoints is planned on a copy of the endpoints in force
// (puts and removals, any number: a batch of a watcher's events is one
// change), then committed at once: one registry, one policy refresh.

// errNotInForce marks a commit whose registry could not be built: nothing
// changed.
var errNotInForce = errors.New("not in force")

// plan is a change of the endpoints being prepared; the caller holds
// endpointsMu from newPlan to commit.
type plan struct {
	next    Topology
	gone    []ResolvedEndpoint // removed, replaced or superseded
	puts    []ResolvedEndpoint
	created []string // namespace/name of endpoints that are new
	log     func(msg string, args ...any)
}

func (c *Collector) newPlan() *plan {
	p := &plan{next: *c.topo, log: c.log.Warn}
	p.next.Endpoints = slices.Clone(c.topo.Endpoints)
	return p
}

// remove takes the endpoint namespace/name out; false if there is none.
func (p *plan) remove(namespace, name string) (ResolvedEndpoint, bool) {
	i := slices.IndexFunc(p.next.Endpoints, func(re ResolvedEndpoint) bool {
		return re.Config.namespace() == namespace && re.Config.Name == name
	})
	if i < 0 {
		return ResolvedEndpoint{}, false
	}
	gone := p.next.Endpoints[i]
	p.next.Endpoints = slices.Delete(p.next.Endpoints, i, i+1)
	p.gone = append(p.gone, gone)
	p.created = slices.DeleteFunc(p.created, func(k string) bool { return k == namespace+"/"+name })
	return gone, true
}

// put adds re, or replaces the endpoint of its namespace and name. A
// discovered endpoint never replaces one of the endpoints file (that is
// refused), and supersedes a discovered one that held its interface or
// one of its addresses (a pod gone whose deletion its watcher has not
// reported yet, its address reused).
func (p *plan) put(re ResolvedEndpoint) error {
	ns, name := re.Config.namespace(), re.Config.Name
	for _, old := range p.next.Endpoints {
		if old.Config.namespace() == ns && old.Config.Name == name && old.Discovered == nil && re.Discovered != nil && !old.Kept {
			return errors.New("the endpoints file declares it")
		}
	}
	keep := make([]ResolvedEndpoint, 0, len(p.next.Endpoints)+1)
	replaced := false
	for _, old := range p.next.Endpoints {
		switch {
		case old.Config.namespace() == ns && old.Config.Name == name:
			p.gone, replaced = append(p.gone, old), true
		case old.Discovered != nil && re.Discovered != nil && supersedes(re, old):
			p.log("discovered endpoint superseded: another holds its interface or address now",
				"endpoint", old.Config.namespace()+"/"+old.Config.Name, "by", ns+"/"+name)
			p.gone = append(p.gone, old)
		default:
			keep = append(keep, old)
		}
	}
	p.next.Endpoints = append(keep, re)
	p.puts = append(p.puts, re)
	if !replaced {
		p.created = append(p.created, ns+"/"+name)
	}
	return nil
}

// supersedes reports whether re takes old's interface or one of its
// addresses.
func supersedes(re, old ResolvedEndpoint) bool {
	if re.HostIfIndex != 0 && re.HostIfIndex == old.HostIfIndex {
		return true
	}
	for _, ip := range re.IPs {
		if slices.Contains(old.IPs, ip) {
			return true
		}
	}
	return false
}

// commit puts the plan in force. In order, so that no packet of a new
// endpoint crosses its interface unattributed or unjudged: the registry
// names it (flows are attributed from then), the state file and the
// OnEndpointsChange functions bring policy into force for it, then the
// datapath attaches to its interface; an interface no endpoint has any
// more is detached last. An error wrapping errNotInForce means nothing
// changed; any other, that the change is in force but a step after the
// registry failed.
func (c *Collector) commit(p *plan) error {
	reg, err := NewRegistryWith(&p.next, c.opts.Identities)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotInForce, err)
	}
	before := c.Registry()
	c.registry.Store(reg)
	if c.hold != nil {
		c.hold.endpointsChanged()
	}
	next := p.next
	c.topo = &next

	inForce := map[string]bool{}
	for _, re := range next.Endpoints {
		inForce[re.Config.namespace()+"/"+re.Config.Name] = true
	}
	for _, g := range p.gone {
		key := g.Config.namespace() + "/" + g.Config.Name
		if inForce[key] {
			continue // replaced
		}
		st := statusIn(before, g.Config.namespace(), g.Config.Name)
		c.log.Info("endpoint removed", "endpoint", key, "interface", g.HostIfName, "kept", g.Kept, "source", st.Source)
		c.events.Append(endpointEvent(agentevent.EndpointDeleted, st))
	}
	for _, re := range p.puts {
		key := re.Config.namespace() + "/" + re.Config.Name
		if !inForce[key] {
			continue // put, then removed in the same change
		}
		st := statusIn(reg, re.Config.namespace(), re.Config.Name)
		created := slices.Contains(p.created, key)
		c.log.Info("endpoint in force", "endpoint", key, "interface", re.HostIfName, "identity", st.Identity,
			"source", st.Source, "new", created)
		if created {
			c.events.Append(endpointEvent(agentevent.EndpointCreated, st))
		}
	}

	var errs []error
	if c.opts.EndpointState != "" {
		errs = append(errs, saveEndpointState(c.opts.EndpointState, next.Endpoints))
	}
	for _, fn := range c.onChange {
		errs = append(errs, fn())
	}
	ifaces := map[string]bool{}
	for _, re := range next.Endpoints {
		ifaces[re.HostIfName] = true
	}
	for _, re := range p.puts {
		if ifaces[re.HostIfName] {
			errs = append(errs, c.attachOne(re.HostIfName))
		}
	}
	for _, g := range p.gone {
		if !ifaces[g.HostIfName] {
			errs = append(errs, c.detachOne(g.HostIfName))
		}
	}
	return errors.Join(errs...)
}

// statusIn describes the endpoint namespace/name of reg.
func statusIn(reg *Registry, namespace, name string) EndpointStatus {
	for _, e := range reg.Endpoints() {
		if e.Namespace == namespace && e.Name == name {
			return e
		}
	}
	return EndpointStatus{Namespace: namespace, Name: name}
}

// attachOne attaches the datapath to ifname unless it is attached, once
// Run attached the others (before, Run attaches it with them).
func (c *Collector) attachOne(ifname string) error {
	if c.opts.Attacher == nil || ifname == "" {
		return nil
	}
	c.mu.Lock()
	running := c.running
	attached := slices.Contains(c.attached, ifname)
	c.mu.Unlock()
	if !running || attached {
		return nil
	}
	if err := c.opts.Attacher.AttachInterface(ifname); err != nil {
		return fmt.Errorf("attach to %s: %w", ifname, err)
	}
	c.mu.Lock()
	c.attached = append(c.attached, ifname)
	c.mu.Unlock()
	return nil
}
