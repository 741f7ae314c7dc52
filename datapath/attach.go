package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// legacyPriority is the cls_bpf filter priority used on kernels without
// TCX; a filter at this priority on a clsact hook is taken to be ours.
const legacyPriority = 0x7e51

// attachment is one interface's ingress and egress programs: TCX links
// (pinned) or, without TCX, cls_bpf filters on a clsact qdisc.
type attachment struct {
	links   []link.Link
	filters []netlink.Filter
}

// detach removes the programs from the interface.
func (a *attachment) detach() error {
	var errs []error
	for _, l := range a.links {
		errs = append(errs, l.Unpin(), l.Close())
	}
	for _, f := range a.filters {
		if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete cls_bpf filter: %w", err))
		}
	}
	return errors.Join(errs...)
}

// release lets go of the programs without detaching them: the TCX links
// stay pinned and the cls_bpf filters in place (Close with a policy in
// force).
func (a *attachment) release() error {
	var errs []error
	for _, l := range a.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// adoptLinks opens the TCX links a previous run left pinned; AttachInterface
// swaps the new programs into them, Close detaches the unclaimed ones (or
// leaves them pinned while a policy is in force). Unreadable pins are
// removed.
func (d *Datapath) adoptLinks() error {
	d.adopted = map[string]link.Link{}
	return d.eachPinnedLink(func(name, path string, l link.Link) error {
		d.adopted[name] = l
		d.log.Info("adopted link of a previous run", "path", path)
		return nil
	})
}

// eachPinnedLink loads every link a previous run pinned (under PinPath's
// links directory) and hands it to each with its pin's name and path,
// stopping at each's first error. A pin that does not load is stale: it is
// removed.
func (d *Datapath) eachPinnedLink(each func(name, path string, l link.Link) error) error {
	linkDir := filepath.Join(d.cfg.PinPath, pinLinks)
	entries, err := os.ReadDir(linkDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", linkDir, err)
	}
	for _, e := range entries {
		p := filepath.Join(linkDir, e.Name())
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			d.log.Warn("removing unreadable stale pin", "path", p, "err", err)
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove stale pin %s: %w", p, err)
			}
			continue
		}
		if err := each(e.Name(), p, l); err != nil {
			return err
		}
	}
	return nil
}

// claimAdopted returns the adopted link pinned as name with the new program
// swapped in, or nil when there is none or it is not usable on ifindex idx
// (then it is detached).
func (d *Datapath) claimAdopted(name string, idx int, prog *ebpf.Program) link.Link {
	l, ok := d.adopted[name]
	if !ok {
		return nil
	}
	delete(d.adopted, name)
	info, err := l.Info()
	if err == nil && (info.TCX() == nil || int(info.TCX().Ifindex) != idx) {
		err = fmt.Errorf("link is not a TCX link on ifindex %d", idx)
	}
	if err == nil {
		// Atomic: the hook runs the old program until the new one replaces it.
		err = l.Update(prog)
	}
	if err != nil {
		d.log.Warn("detaching an adopted link that cannot be updated", "link", name, "err", err)
		_ = errors.Join(l.Unpin(), l.Close())
		return nil
	}
	return l
}

// AttachInterface attaches the flow programs to ifname's ingress and
// egress (the host programs on Config.HostDevices): TCX links pinned under PinPath/links when the kernel has TCX,
// else cls_bpf filters on a clsact qdisc. Attaching twice is a no-op.
// A TCX link adopted from a previous run (see Load) and a cls_bpf filter
// left at our priority get the new program in place, with no moment
// without a program.
//
// On a loopback interface only ingress is attached: every packet sent on lo
// leaves through its egress and comes back through its ingress, so both
// hooks would count it twice. The flows of lo therefore always have
// InitiatorHook Ingress.
func (d *Datapath) AttachInterface(ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("attach interface: datapath closed")
	}
	if _, ok := d.ifaces[ifname]; ok {
		return nil
	}
	iface, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("attach interface %s: %w", ifname, err)
	}
	idx := iface.Attrs().Index
	bridge, err := d.attachBridge(ifname, iface.Attrs().MasterIndex)
	if err != nil {
		return fmt.Errorf("attach interface %s: %w", ifname, err)
	}
	if err := d.putHostMAC(idx, iface.Attrs().HardwareAddr, bridge != ""); err != nil {
		d.releaseBridge(ifname)
		return fmt.Errorf("attach interface %s: %w", ifname, err)
	}
	hooks := d.hooks(slices.Contains(d.cfg.HostDevices, ifname))
	if iface.Attrs().Flags&net.FlagLoopback != 0 {
		hooks = hooks[:1] // ingress only: see above
	}
	a, err := d.attachTCX(ifname, idx, hooks)
	if errors.Is(err, ebpf.ErrNotSupported) {
		d.log.Info("TCX not supported, using clsact + cls_bpf", "interface", ifname)
		a, err = d.attachLegacy(idx, hooks)
	}
	if err != nil {
		d.releaseBridge(ifname)
		return fmt.Errorf("attach interface %s: %w", ifname, err)
	}
	d.ifaces[ifname] = a
	d.log.Info("attached", "interface", ifname, "ifindex", idx, "tcx", len(a.links) > 0, "hooks", len(hooks))
	return nil
}

// hook is one program and its attach point.
type hook struct {
	name   string
	prog   *ebpf.Program
	tcx    ebpf.AttachType
	parent uint32
}

// hooks pairs each program with its attach point, ingress first: the host
// programs for a host device.
func (d *Datapath) hooks(hostDevice bool) []hook {
	if hostDevice {
		return []hook{
			{"ingress", d.objs.FlowHostIngress, ebpf.AttachTCXIngress, netlink.HANDLE_MIN_INGRESS},
			{"egress", d.objs.FlowHostEgress, ebpf.AttachTCXEgress, netlink.HANDLE_MIN_EGRESS},
		}
	}
	return []hook{
		{"ingress", d.objs.FlowIngress, ebpf.AttachTCXIngress, netlink.HANDLE_MIN_INGRESS},
		{"egress", d.objs.FlowEgress, ebpf.AttachTCXEgress, netlink.HANDLE_MIN_EGRESS},
	}
}

func (d *Datapath) attachTCX(ifname string, idx int, hooks []hook) (*attachment, error) {
	if d.tcxBroken {
		return nil, fmt.Errorf("tcx disabled for test: %w", ebpf.ErrNotSupported)
	}
	a := &attachment{}
	for _, h := range hooks {
		name := ifname + "-" + h.name
		if l := d.claimAdopted(name, idx, h.prog); l != nil {
			a.links = append(a.links, l)
			continue
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: idx, Program: h.prog, Attach: h.tcx})
		if err != nil {
			_ = a.detach()
			return nil, fmt.Errorf("tcx %s: %w", h.name, err)
		}
		a.links = append(a.links, l)
		if err := l.Pin(filepath.Join(d.cfg.PinPath, pinLinks, name)); err != nil {
			_ = a.detach()
			return nil, fmt.Errorf("pin tcx %s link: %w", h.name, err)
		}
	}
	return a, nil
}

func (d *Datapath) attachLegacy(idx int, hooks []hook) (*attachment, error) {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("add clsact qdisc: %w", err)
	}
	a := &attachment{}
	for _, h := range hooks {
		f := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: idx, Parent: h.parent, Handle: 1,
				Protocol: unix.ETH_P_ALL, Priority: legacyPriority,
			},
			Fd: h.prog.FD(), Name: "periscope-" + h.name, DirectAction: true,
		}
		// Replace: a crashed collector's filter at our priority is ours.
		if err := netlink.FilterReplace(f); err != nil {
			_ = a.detach()
			return nil, fmt.Errorf("add cls_bpf %s filter: %w", h.name, err)
		}
		a.filters = append(a.filters, f)
	}
	return a, nil
}

// putHostMAC records an interface's own MAC for the redirect (frames the
// TC program steers to the proxy get it as their destination); interfaces
// without an Ethernet address get none.
func (d *Datapath) putHostMAC(idx int, mac net.HardwareAddr, bridged bool) error {
	if len(mac) != 6 {
		return nil
	}
	v := tcFlowHostMacValue{Bridged: b2u(bridged)}
	copy(v.Addr[:], mac)
	if err := d.objs.HostMac.Put(uint32(idx), &v); err != nil {
		return fmt.Errorf("record the MAC of ifindex %d: %w", idx, err)
	}
	return nil
}

// DetachInterface removes the flow programs from ifname. Flows seen there
// stay in the table until the sweeper ends them.
func (d *Datapath) DetachInterface(ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.ifaces[ifname]
	if !ok {
		return fmt.Errorf("detach interface %s: not attached", ifname)
	}
	delete(d.ifaces, ifname)
	err := a.detach()
	if berr := d.releaseBridge(ifname); err == nil {
		err = berr
	}
	if err != nil {
		return fmt.Errorf("detach interface %s: %w", ifname, err)
	}
	return nil
}

// bridgeHook is proxy_assign attached to a bridge's TC ingress while one
// of its ports is attached.
type bridgeHook struct {
	a     *attachment
	ports map[string]bool
}

// attachBridge attaches proxy_assign to the ingress of the bridge whose
// port ifname is (master: its master's ifindex), once per bridge, and
// returns the bridge's name; "" when ifname is no bridge port. Callers
// hold d.mu.
func (d *Datapath) attachBridge(ifname string, master int) (string, error) {
	if master == 0 {
		return "", nil
	}
	ml, err := netlink.LinkByIndex(master)
	if err != nil {
		return "", fmt.Errorf("find master %d: %w", master, err)
	}
	if ml.Type() != "bridge" {
		return "", nil
	}
	name := ml.Attrs().Name
	if d.bridges == nil {
		d.bridges = map[string]*bridgeHook{}
	}
	if b, ok := d.bridges[name]; ok {
		b.ports[ifname] = true
		return name, nil
	}
	hooks := []hook{{"proxy", d.objs.ProxyAssign, ebpf.AttachTCXIngress, netlink.HANDLE_MIN_INGRESS}}
	a, err := d.attachTCX(name, master, hooks)
	if errors.Is(err, ebpf.ErrNotSupported) {
		a, err = d.attachLegacy(master, hooks)
	}
	if err != nil {
		return "", fmt.Errorf("attach proxy_assign to bridge %s: %w", name, err)
	}
	d.bridges[name] = &bridgeHook{a: a, ports: map[string]bool{ifname: true}}
	d.log.Info("attached proxy_assign", "bridge", name, "ifindex", master)
	return name, nil
}

// releaseBridge forgets port ifname of its bridge and detaches the
// bridge's proxy_assign when it was the last. Callers hold d.mu.
func (d *Datapath) releaseBridge(ifname string) error {
	for name, b := range d.bridges {
		if !b.ports[ifname] {
			continue
		}
		delete(b.ports, ifname)
		if len(b.ports) > 0 {
			return nil
		}
		delete(d.bridges, name)
		return b.a.detach()
	}
	return nil
}

// Interfaces returns the names of the attached interfaces, sorted.
func (d *Datapath) Interfaces() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.ifaces))
	for n := range d.ifaces {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
