package netlab

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// maxPods is how many pods a lab's /24 holds after the bridge's .1.
const maxPods = 250

// PodSpec describes a pod to add to a lab.
type PodSpec struct {
	// Name is the pod's name: lower-case letters, digits and '-'.
	Name string
	// Namespace is the workload namespace the pod claims (e.g. "default");
	// netlab only records it for the caller.
	Namespace string
	// Labels are the pod's labels (e.g. app=frontend); netlab only records
	// them for the caller.
	Labels map[string]string
}

// Pod is a network namespace attached to its lab's bridge by a veth pair.
type Pod struct {
	// Name, Namespace and Labels come from the PodSpec.
	Name      string
	Namespace string
	Labels    map[string]string
	// NetNSName is the name for `ip netns exec`; NetNSPath is its file.
	NetNSName string
	NetNSPath string
	// HostVeth is the veth end in the root namespace, a port of the bridge:
	// where the datapath attaches.
	HostVeth Link
	// Veth is the pod's end, eth0 inside the pod's namespace.
	Veth Link
	// IPv4 and IPv6 are the pod's addresses on eth0.
	IPv4, IPv6 netip.Addr

	ns netns.NsHandle
}

var podName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// AddPod creates a pod: its network namespace with lo up, a veth pair whose
// host end joins the bridge and whose other end is eth0 in the pod, with the
// next free IPv4 and IPv6 addresses of the lab. Routes cover only the lab's
// subnets: there is no default route.
func (l *Lab) AddPod(spec PodSpec) (*Pod, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("add pod %q: lab %q is closed", spec.Name, l.Name)
	}
	if !podName.MatchString(spec.Name) {
		return nil, fmt.Errorf("add pod %q: name must be lower-case letters, digits and '-'", spec.Name)
	}
	for _, p := range l.pods {
		if p.Name == spec.Name {
			return nil, fmt.Errorf("add pod %q: lab %q has one already", spec.Name, l.Name)
		}
	}
	n := len(l.pods)
	if n >= maxPods {
		return nil, fmt.Errorf("add pod %q: lab %q is full (%d pods)", spec.Name, l.Name, maxPods)
	}
	p := &Pod{
		Name:      spec.Name,
		Namespace: spec.Namespace,
		Labels:    maps.Clone(spec.Labels),
		NetNSName: l.prefix() + spec.Name,
		IPv4:      hostAddr(l.IPv4Net, n+2),
		IPv6:      hostAddr(l.IPv6Net, n+2),
		HostVeth:  Link{Name: fmt.Sprintf("%sv%d", l.prefix(), n)},
		ns:        netns.None(),
	}
	p.NetNSPath = filepath.Join(netnsDir, p.NetNSName)
	// Registered first so Close removes a half-made pod.
	l.pods = append(l.pods, p)
	if err := p.create(l); err != nil {
		return nil, fmt.Errorf("add pod %q to lab %q: %w", spec.Name, l.Name, err)
	}
	l.log.Debug("pod added", "pod", p.Name, "netns", p.NetNSName, "veth", p.HostVeth.Name,
		"ipv4", p.IPv4, "ipv6", p.IPv6)
	return p, nil
}

func (p *Pod) create(l *Lab) error {
	ns, err := newNamedNetns(p.NetNSName)
	if err != nil {
		return err
	}
	p.ns = ns

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.HostVeth.Name, MasterIndex: l.Bridge.Index},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", p.HostVeth.Name, err)
	}
	host, err := netlink.LinkByName(p.HostVeth.Name)
	if err != nil {
		return fmt.Errorf("find veth %s: %w", p.HostVeth.Name, err)
	}
	p.HostVeth.Index = host.Attrs().Index
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", p.HostVeth.Name, err)
	}

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in netns %s: %w", p.NetNSName, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", p.NetNSName, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", p.NetNSName, err)
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("find eth0 in %s: %w", p.NetNSName, err)
	}
	p.Veth = Link{Name: "eth0", Index: eth.Attrs().Index}
	for _, a := range []netip.Prefix{
		netip.PrefixFrom(p.IPv4, l.IPv4Net.Bits()),
		netip.PrefixFrom(p.IPv6, l.IPv6Net.Bits()),
	} {
		// The kernel adds the subnet's route with the address; nothing else.
		if err := h.AddrAdd(eth, nlAddr(a)); err != nil {
			return fmt.Errorf("add %s to eth0 in %s: %w", a, p.NetNSName, err)
		}
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set eth0 up in %s: %w", p.NetNSName, err)
	}
	return p.waitReady(h)
}

// remove deletes the pod's veth pair and namespace.
func (p *Pod) remove() error {
	var errs []error
	if p.ns.IsOpen() {
		errs = append(errs, p.ns.Close())
		p.ns = netns.None()
	}
	errs = append(errs, deleteLink(p.HostVeth.Name), deleteNetns(p.NetNSName))
	return errors.Join(errs...)
}

// Addr returns the pod's IPv6 address when v6 is true, else its IPv4 one.
func (p *Pod) Addr(v6 bool) netip.Addr {
	if v6 {
		return p.IPv6
	}
	return p.IPv4
}

// AddIPv4 gives the pod's eth0 a further IPv4 address, a /32 (as
// `ip addr add A/32 dev eth0` in the pod): what the pod sends from it takes
// the pod's own path under a source address of its own, and the pod answers
// ARP for it. It goes with the pod.
func (p *Pod) AddIPv4(a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("add %v to %s: not an IPv4 address", a, p.Name)
	}
	return p.Do(func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0 of %s: %w", p.Name, err)
		}
		if err := netlink.AddrAdd(eth, nlAddr(netip.PrefixFrom(a, 32))); err != nil {
			return fmt.Errorf("add %v to eth0 of %s: %w", a, p.Name, err)
		}
		return nil
	})
}

// Do runs fn on a thread switched into the pod's network namespace and
// switches back. Sockets fn opens stay in the pod's namespace after Do
// returns; goroutines fn starts do not run in it.
func (p *Pod) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(p.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", p.NetNSName, err)
	}
	defer func() {
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else the locked thread dies with its goroutine
	}()
	return fn()
}

// prefixIPNet converts p to a *net.IPNet with bits-long addresses.
func prefixIPNet(p netip.Prefix, bits int) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
