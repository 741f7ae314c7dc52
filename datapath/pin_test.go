package datapath

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/vishvananda/netlink"
)

// crash drops d's file descriptors without unpinning anything, as a killed
// collector would.
func crash(t *testing.T, d *Datapath) {
	t.Helper()
	for _, a := range d.ifaces {
		for _, l := range a.links {
			_ = l.Close()
		}
	}
	_ = d.reader.Close()
	_ = d.counters.close(true)
	_ = d.objs.Close()
	_ = d.pinLock.unlock() // the kernel drops a dead process's flock
}

func TestLoadRemovesLeftoversOfACrashedRun(t *testing.T) {
	pin := netlab.PinPath(t, "test-crash")
	l := newVethLab(t)
	d1 := loadForTest(t, Config{PinPath: pin, Logger: quietLogger})
	t.Cleanup(func() { _ = os.RemoveAll(pin) })
	if err := d1.AttachInterface(l.host); err != nil {
		t.Fatal(err)
	}
	crash(t, d1)
	d1.closed = true // its Cleanup Close must not touch the new run's pins
	if _, err := os.Stat(filepath.Join(pin, pinLinks, l.host+"-ingress")); err != nil {
		t.Fatalf("crash left no link pin: %v", err)
	}

	d2, err := Load(Config{PinPath: pin, Logger: quietLogger})
	if err != nil {
		t.Fatalf("load over leftovers: %v", err)
	}
	ifc, _ := netlink.LinkByName(l.host)
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Attrs().Index, Attach: ebpf.AttachTCXIngress})
	if err != nil || len(res.Programs) != 0 {
		t.Fatalf("stale program still attached (%v): %+v", err, res)
	}
	if err := d2.AttachInterface(l.host); err != nil {
		t.Fatalf("re-attach: %v", err)
	}
	if err := d2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// PinPath predates d2, so d2 leaves it, but empty.
	if ents, err := os.ReadDir(pin); err != nil || len(ents) != 0 {
		t.Fatalf("pins left after Close: %v %v", ents, err)
	}
}

func TestClsactFallbackAttachesAndDetaches(t *testing.T) {
	d := loadForTest(t, Config{})
	d.tcxBroken = true
	l := newVethLab(t)
	if err := d.AttachInterface(l.host); err != nil {
		t.Fatalf("attach: %v", err)
	}
	ifc, _ := netlink.LinkByName(l.host)
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := netlink.FilterList(ifc, parent)
		if err != nil || len(fs) != 1 {
			t.Fatalf("filters at %x: %v %v, want one", parent, fs, err)
		}
	}
	if err := d.DetachInterface(l.host); err != nil {
		t.Fatalf("detach: %v", err)
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		if fs, _ := netlink.FilterList(ifc, parent); len(fs) != 0 {
			t.Fatalf("filters left at %x: %v", parent, fs)
		}
	}
}
