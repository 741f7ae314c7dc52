package netlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NamePrefix starts the name of every link and network namespace a lab makes.
const NamePrefix = "psc-"

// Options configure a lab.
type Options struct {
	// Name describes the lab in logs (e.g. the test's name); names of links
	// and namespaces use the lab's short unique ID instead.
	Name string
	// Logger receives debug logs of what the lab creates and removes;
	// nil discards them.
	Logger *slog.Logger
}

// Link names a network interface.
type Link struct {
	Name  string
	Index int
}

// Lab is a bridge in the root network namespace with pods attached to it
// through veth pairs. Its methods are safe for concurrent use.
type Lab struct {
	// Name is Options.Name.
	Name string
	// ID is the short unique id in every name the lab makes.
	ID string
	// IPv4Net and IPv6Net are the lab's subnets: a /24 in 198.18.0.0/15 and
	// a /64 in fd00::/8, unique among the labs alive on the machine.
	IPv4Net, IPv6Net netip.Prefix
	// HostIPv4 and HostIPv6 are the bridge's addresses (the first of each
	// subnet): the "host" as the pods see it.
	HostIPv4, HostIPv6 netip.Addr
	// Bridge is the lab's bridge in the root namespace.
	Bridge Link

	log *slog.Logger

	mu     sync.Mutex
	slot   *slot
	pods   []*Pod
	closed bool
}

// New creates a lab: it claims a free subnet and id, removes leftovers of a
// crashed lab that had them, and creates the bridge. Close undoes it all.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := claimSlot()
	if err != nil {
		return nil, fmt.Errorf("new lab %q: %w", opts.Name, err)
	}
	l := &Lab{
		Name:    opts.Name,
		ID:      slotID(s.index),
		IPv4Net: subnet4(s.index),
		IPv6Net: subnet6(s.index),
		slot:    s,
	}
	l.HostIPv4 = hostAddr(l.IPv4Net, 1)
	l.HostIPv6 = hostAddr(l.IPv6Net, 1)
	l.log = log.With("component", "netlab", "lab", opts.Name, "id", l.ID)

	// We hold the slot's lock, so anything named after it is a crashed
	// lab's leftover.
	if err := removeByPrefix(l.prefix()); err != nil {
		l.Close()
		return nil, fmt.Errorf("new lab %q: remove leftovers: %w", opts.Name, err)
	}
	if err := l.addBridge(); err != nil {
		l.Close()
		return nil, fmt.Errorf("new lab %q: %w", opts.Name, err)
	}
	l.log.Debug("lab created", "bridge", l.Bridge.Name, "ipv4", l.IPv4Net, "ipv6", l.IPv6Net)
	return l, nil
}

// prefix starts every name this lab makes.
func (l *Lab) prefix() string { return NamePrefix + l.ID + "-" }

func (l *Lab) addBridge() error {
	snooping := false
	br := &netlink.Bridge{
		LinkAttrs: netlink.LinkAttrs{Name: l.prefix() + "br"},
		// Flood multicast so IPv6 neighbour discovery never waits on MLD.
		MulticastSnooping: &snooping,
	}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", br.Name, err)
	}
	link, err := netlink.LinkByName(br.Name)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", br.Name, err)
	}
	l.Bridge = Link{Name: br.Name, Index: link.Attrs().Index}
	for _, a := range []netip.Prefix{
		netip.PrefixFrom(l.HostIPv4, l.IPv4Net.Bits()),
		netip.PrefixFrom(l.HostIPv6, l.IPv6Net.Bits()),
	} {
		if err := netlink.AddrAdd(link, nlAddr(a)); err != nil {
			return fmt.Errorf("add %s to bridge %s: %w", a, br.Name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set bridge %s up: %w", br.Name, err)
	}
	return nil
}

// nlAddr is a netlink address without duplicate address detection, so an
// IPv6 address is usable at once.
func nlAddr(p netip.Prefix) *netlink.Addr {
	a := p.Addr()
	bits := 32
	if a.Is6() {
		bits = 128
	}
	addr := &netlink.Addr{IPNet: prefixIPNet(p, bits)}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	return addr
}

// Pods returns the lab's pods in the order they were added.
func (l *Lab) Pods() []*Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Pod(nil), l.pods...)
}

// Pod returns the pod with this name, or nil.
func (l *Lab) Pod(name string) *Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Close removes every network namespace and link the lab made and frees its
// subnet. It is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, p := range l.pods {
		errs = append(errs, p.remove())
	}
	if l.Bridge.Name != "" {
		errs = append(errs, deleteLink(l.Bridge.Name))
	}
	// Catch what a half-done AddPod or New left behind.
	errs = append(errs, removeByPrefix(l.prefix()))
	errs = append(errs, l.slot.release())
	l.log.Debug("lab closed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab %q: %w", l.Name, err)
	}
	return nil
}
