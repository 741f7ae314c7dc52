package nldump_test

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/discovery/nldump"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A pod's addresses are read from the host namespace by its netns id, each
// with the index of its interface in the pod; the family filter holds.
func TestNetnsAddrsDumpsAnotherNamespace(t *testing.T) {
	lab := labtest.NewLab(t)
	pod, err := lab.AddPod(netlab.PodSpec{Name: "dumped"})
	if err != nil {
		t.Fatalf("add pod: %v", err)
	}
	f, err := os.Open(pod.NetNSPath)
	if err != nil {
		t.Fatalf("open netns: %v", err)
	}
	defer f.Close()
	if err := netlink.SetNetNsIdByFd(int(f.Fd()), -1); err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("assign netns id: %v", err)
	}
	nsid, err := netlink.GetNetNsIdByFd(int(f.Fd()))
	if err != nil || nsid < 0 {
		t.Fatalf("netns id: %d, %v", nsid, err)
	}

	for _, tc := range []struct {
		family int
		want   []netip.Addr
		absent []netip.Addr
	}{
		{unix.AF_UNSPEC, []netip.Addr{pod.Addr(false), pod.Addr(true), netip.MustParseAddr("127.0.0.1")}, nil},
		{unix.AF_INET, []netip.Addr{pod.Addr(false)}, []netip.Addr{pod.Addr(true)}},
		{unix.AF_INET6, []netip.Addr{pod.Addr(true)}, []netip.Addr{pod.Addr(false)}},
	} {
		addrs, err := nldump.NetnsAddrs(nsid, tc.family)
		if err != nil {
			t.Fatalf("family %d: %v", tc.family, err)
		}
		var got []netip.Addr
		for _, a := range addrs {
			got = append(got, a.IP)
			if a.IP == pod.Addr(false) && a.Index != pod.Veth.Index {
				t.Errorf("%s on interface %d, want the pod's veth %d", a.IP, a.Index, pod.Veth.Index)
			}
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("family %d: %s missing from %v", tc.family, w, got)
			}
		}
		for _, a := range tc.absent {
			if slices.Contains(got, a) {
				t.Errorf("family %d: %s in %v", tc.family, a, got)
			}
		}
	}
}
