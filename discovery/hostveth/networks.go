package hostveth

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/discovery/nldump"
)

// Networks is the set of the host's workload networks: the prefixes the
// main routing table sends to a veth whose peer is in another network
// namespace (Calico-style /32 and /128 routes), or to a bridge whose ports
// are all such veths (Docker, Podman, Flannel, the bridge plugin; a
// bridge with a physical port is the host's uplink, not a workload
// network). An address in one belongs to a workload of this node, known
// or not yet. Default routes are never workload networks.
//
// Contains reads a snapshot and allocates nothing; Run keeps it current.
type Networks struct {
	prefixes atomic.Pointer[[]netip.Prefix]
	log      *slog.Logger
}

// NewNetworks reads the workload networks from the routing table once;
// Run logs to log (nil discards).
func NewNetworks(log *slog.Logger) (*Networks, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Networks{log: log.With("component", "workload-networks")}
	if err := n.Reload(); err != nil {
		return nil, err
	}
	return n, nil
}

// Contains reports whether a is on one of the workload networks.
func (n *Networks) Contains(a netip.Addr) bool {
	p := n.prefixes.Load()
	if p == nil {
		return false
	}
	a = a.Unmap()
	for _, pre := range *p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// Prefixes returns the workload networks now.
func (n *Networks) Prefixes() []netip.Prefix {
	if p := n.prefixes.Load(); p != nil {
		return append([]netip.Prefix(nil), *p...)
	}
	return nil
}

// Reload reads the routing table and the links again (a dump the kernel
// interrupted is read again: nldump).
func (n *Networks) Reload() error {
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("workload networks: list links: %w", err)
	}
	workload := workloadLinks(links)
	routes, err := nldump.Retry(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("workload networks: list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil || !workload[r.LinkIndex] || r.Type != unix.RTN_UNICAST {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		addr, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 {
			continue
		}
		p := netip.PrefixFrom(addr.Unmap(), ones).Masked()
		if p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() {
			continue
		}
		out = append(out, p)
	}
	n.prefixes.Store(&out)
	return nil
}

// workloadLinks are the indexes of the links whose routes lead to
// workloads: veths with their peer in another namespace, and bridges with
// no port but such veths.
func workloadLinks(links []netlink.Link) map[int]bool {
	podVeth := func(l netlink.Link) bool {
		_, veth := l.(*netlink.Veth)
		return veth && l.Attrs().NetNsID >= 0
	}
	out := map[int]bool{}
	bridges := map[int]bool{}
	for _, l := range links {
		if _, ok := l.(*netlink.Bridge); ok {
			bridges[l.Attrs().Index] = true
		}
		if podVeth(l) {
			out[l.Attrs().Index] = true
		}
	}
	for _, l := range links {
		if m := l.Attrs().MasterIndex; bridges[m] && !podVeth(l) {
			bridges[m] = false // a port that is no workload's: the host's uplink
		}
	}
	for i, ok := range bridges {
		if ok {
			out[i] = true
		}
	}
	return out
}

// resubscribeAfter is how long Run waits before it watches again after
// the kernel ended a watch (its socket overflowed, say).
const resubscribeAfter = time.Second

// Run keeps the networks current until ctx ends: every change of a route
// or a link reads them again (changes that come together, once). A watch
// the kernel ends is begun again (logged) after a read of everything;
// Run returns nil when ctx ends.
func (n *Networks) Run(ctx context.Context) error {
	for {
		err := n.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		n.log.Warn("workload networks: watch ended; watching again", "err", err, "after", resubscribeAfter)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(resubscribeAfter):
		}
	}
}

// watch follows route and link changes until ctx ends or the kernel ends
// the watch.
func (n *Networks) watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	routes := make(chan netlink.RouteUpdate, 256)
	links := make(chan netlink.LinkUpdate, 256)
	failed := make(chan error, 2)
	onErr := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	if err := netlink.RouteSubscribeWithOptions(routes, ctx.Done(), netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("watch routes: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(links, ctx.Done(), netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("watch links: %w", err)
	}
	// What changed before the watch began.
	if err := n.Reload(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case _, ok := <-routes:
			if !ok {
				return endedUnless(ctx, "route")
			}
		case _, ok := <-links:
			if !ok {
				return endedUnless(ctx, "link")
			}
		}
		if !drain(routes) || !drain(links) {
			return endedUnless(ctx, "route or link")
		}
		if err := n.Reload(); err != nil {
			return err
		}
	}
}

// endedUnless is the error of a watch whose channel closed: none when ctx
// ended it.
func endedUnless(ctx context.Context, what string) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("the %s watch ended", what)
}

// drain empties ch of what is already in it; false when ch is closed (the
// watch ended).
func drain[T any](ch <-chan T) bool {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return false
			}
		default:
			return true
		}
	}
}
