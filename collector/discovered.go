package collector

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/discovery"
)

// Endpoints a watcher discovers (discovery/kubernetes' pods,
// discovery/docker's containers) come and go through the same explicit
// operations as the endpoints file's: Added and Updated are PutEndpoint,
// Deleted is RemoveEndpoint. The Collector is the watchers'
// discovery.EndpointSink.

var _ discovery.EndpointSink = (*Collector)(nil)

// source is the watcher that reported the endpoint, or "" for a declared one.
func (e *endpointInfo) source() string {
	if e.discovered == nil {
		return ""
	}
	return e.discovered.Source
}

// EndpointChanged follows a watcher's endpoint: Added and Updated put it in
// force (PutEndpoint), Deleted removes it (RemoveEndpoint), unless the
// endpoint of that name in force is not the one the watcher reported (the
// endpoints file declares it). An endpoint without an interface of its own
// (a host-network pod: it is the host; a veth not found) is not one of the
// node's endpoints; one in force under its name is removed. Errors are
// logged: the watcher cannot act on them.
func (c *Collector) EndpointChanged(ev discovery.EndpointEvent) {
	ep := ev.Endpoint
	log := c.log.With("source", ep.Source, "endpoint", ep.Namespace+"/"+ep.Name, "event", ev.Kind.String())
	if ev.Kind == discovery.Deleted || ep.HostNetwork || ep.Interface.Index == 0 {
		if !c.isDiscovered(ep) {
			if ev.Kind != discovery.Deleted {
				log.Info("discovered endpoint without an interface of its own: not attached", "host_network", ep.HostNetwork)
			}
			return
		}
		if _, err := c.RemoveEndpoint(ep.Namespace, ep.Name); err != nil {
			log.Warn("discovered endpoint not removed cleanly", "err", err)
		}
		return
	}
	re, err := resolveDiscovered(ep)
	if err != nil {
		log.Warn("discovered endpoint not attached", "err", err)
		return
	}
	if _, err := c.PutEndpoint(re); err != nil {
		log.Warn("discovered endpoint not in force", "err", err)
	}
}

// isDiscovered reports whether the endpoint in force under ep's name is
// the one ep's watcher reported.
func (c *Collector) isDiscovered(ep discovery.Endpoint) bool {
	c.endpointsMu.Lock()
	defer c.endpointsMu.Unlock()
	for _, re := range c.topo.Endpoints {
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
