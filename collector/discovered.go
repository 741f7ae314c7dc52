package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/discovery"
)

// Endpoints a watcher discovers (discovery/kubernetes' pods,
// discovery/docker's containers) come and go through the same explicit
// operations as the endpoints file's: Added and Updated are PutEndpoint,
// Deleted is RemoveEndpoint, in batches. The Collector is the watchers'
// discovery.EndpointSink.

var _ discovery.EndpointSink = (*Collector)(nil)

// source is the watcher that reported the endpoint, or "" for a declared one.
func (e *endpointInfo) source() string {
	if e.discovered == nil {
		return ""
	}
	return e.discovered.Source
}

// discoveredQueue holds the watchers' events not yet in force. They are
// put in force in batches, in order, each batch one change of the
// endpoints (one registry, one policy refresh): the watchers never wait
// for a change, and at any rate of events the collector keeps up, the
// time to put a new endpoint in force staying about one change's.
type discoveredQueue struct {
	mu       sync.Mutex
	pending  []discovery.EndpointEvent
	draining bool
}

// EndpointChanged follows a watcher's endpoint: Added and Updated put it in
// force (as PutEndpoint), Deleted removes it (as RemoveEndpoint), unless
// the endpoint of that name in force is not the one the watcher reported
// (the endpoints file declares it). An endpoint without an interface of
// its own (a host-network pod: it is the host; a veth not found), or whose
// interface is not what the watcher says (gone meanwhile), is not one of
// the node's endpoints; one its watcher put in force under its name is
// removed. It
// returns at once: the events are put in force in order, in batches, by a
// goroutine that ends when none is left. Errors are logged: the watcher
// cannot act on them.
func (c *Collector) EndpointChanged(ev discovery.EndpointEvent) {
	q := &c.discovered
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, ev)
	if !q.draining {
		q.draining = true
		go c.drainDiscovered()
	}
}

// drainDiscovered puts the pending events in force, a batch at a time,
// until none is left.
func (c *Collector) drainDiscovered() {
	q := &c.discovered
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.draining = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		c.applyDiscovered(batch)
	}
}

// applyDiscovered puts a batch of events in force as one change.
func (c *Collector) applyDiscovered(batch []discovery.EndpointEvent) {
	// The kernel is asked about interfaces before the endpoints are locked.
	resolved := make([]*ResolvedEndpoint, len(batch))
	for i, ev := range batch {
		ep := ev.Endpoint
		if ev.Kind == discovery.Deleted || ep.HostNetwork || ep.Interface.Index == 0 {
			continue
		}
		re, err := resolveDiscovered(ep)
		if err != nil {
			c.log.Warn("discovered endpoint not attached", "source", ep.Source, "endpoint", ep.Namespace+"/"+ep.Name, "err", err)
			continue
		}
		resolved[i] = &re
	}
	c.applyResolved(batch, resolved)
}

// applyResolved puts a batch of events in force as one change; resolved
// holds the endpoint of each Added or Updated event with an interface
// (nil: none, or it could not be resolved). When the batch cannot be in
// force as a whole (one endpoint's address is one of the endpoints
// file's, say), each event is tried alone: only the offending ones are
// refused.
func (c *Collector) applyResolved(batch []discovery.EndpointEvent, resolved []*ResolvedEndpoint) {
	c.endpointsMu.Lock()
	defer c.endpointsMu.Unlock()
	err := c.applyLocked(batch, resolved)
	if errors.Is(err, errNotInForce) && len(batch) > 1 {
		for i := range batch {
			c.logApplied(batch[i:i+1], c.applyLocked(batch[i:i+1], resolved[i:i+1]))
		}
		return
	}
	c.logApplied(batch, err)
}

func (c *Collector) logApplied(batch []discovery.EndpointEvent, err error) {
	if err == nil {
		return
	}
	if len(batch) == 1 {
		ep := batch[0].Endpoint
		c.log.Warn("discovered endpoint: change not wholly in force", "source", ep.Source,
			"endpoint", ep.Namespace+"/"+ep.Name, "event", batch[0].Kind.String(), "err", err)
		return
	}
	c.log.Warn("discovered endpoints: change not wholly in force", "events", len(batch), "err", err)
}

// applyLocked plans and commits the batch; the caller holds endpointsMu.
func (c *Collector) applyLocked(batch []discovery.EndpointEvent, resolved []*ResolvedEndpoint) error {
	p := c.newPlan()
	changed := false
	for i, ev := range batch {
		ep := ev.Endpoint
		log := c.log.With("source", ep.Source, "endpoint", ep.Namespace+"/"+ep.Name, "event", ev.Kind.String())
		if re := resolved[i]; re != nil {
			if err := p.put(*re); err != nil {
				log.Warn("discovered endpoint not in force", "err", err)
				continue
			}
			changed = true
			continue
		}
		if ev.Kind != discovery.Deleted && (ep.HostNetwork || ep.Interface.Index == 0) {
			log.Info("discovered endpoint without an interface of its own: not attached", "host_network", ep.HostNetwork)
		}
		if reportedBy(p.next.Endpoints, ep) {
			p.remove(ep.Namespace, ep.Name)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return c.commit(p)
}

// reportedBy reports whether the endpoint among eps under ep's name is the
// one ep's watcher reported.
func reportedBy(eps []ResolvedEndpoint, ep discovery.Endpoint) bool {
	for _, re := range eps {
		if re.Config.namespace() == ep.Namespace && re.Config.Name == ep.Name {
			return re.Discovered != nil && re.Discovered.Source == ep.Source && re.Discovered.ID == ep.ID
		}
	}
	return false
}

// resolveDiscovered makes a watcher's endpoint a ResolvedEndpoint: its
// host veth as the watcher found it (checked to be a veth still of that
// index), its addresses, and the link-local addresses of the veth's peer,
// read as resolveEndpoint reads a declared one's.
func resolveDiscovered(ep discovery.Endpoint) (ResolvedEndpoint, error) {
	re := ResolvedEndpoint{
		Config:      EndpointConfig{Name: ep.Name, Namespace: ep.Namespace, Interface: ep.Interface.Name},
		HostIfIndex: uint32(ep.Interface.Index),
		HostIfName:  ep.Interface.Name,
		IPs:         append([]netip.Addr(nil), ep.IPs...),
		Discovered:  &Discovered{Source: ep.Source, ID: ep.ID, Labels: append([]string(nil), ep.Labels...)},
	}
	for _, ip := range ep.IPs {
		re.Config.IPs = append(re.Config.IPs, ip.String())
	}
	l, err := netlink.LinkByIndex(ep.Interface.Index)
	if err != nil {
		return re, fmt.Errorf("host interface %s (index %d): %w", ep.Interface.Name, ep.Interface.Index, err)
	}
	if l.Attrs().Name != ep.Interface.Name {
		return re, fmt.Errorf("host interface index %d is %s now, not %s", ep.Interface.Index, l.Attrs().Name, ep.Interface.Name)
	}
	if err := endpointInterface(l); err != nil {
		return re, err
	}
	if a := l.Attrs(); a.NetNsID >= 0 && a.ParentIndex > 0 {
		if _, linkLocal, err := netnsAddrs(a.NetNsID, a.ParentIndex); err == nil {
			re.LinkLocal = linkLocal
		}
	}
	return re, nil
}
