package hostveth

import (
	"net/netip"

	"github.com/periscope-dev/periscope/discovery/nldump"
	"golang.org/x/sys/unix"
)

// addrIndex says whether the network namespace with host netns id nsid has
// address ip, and on which of its interfaces.
func addrIndex(nsid int, ip netip.Addr) (int, bool, error) {
	family := unix.AF_INET
	if ip.Is6() && !ip.Is4In6() {
		family = unix.AF_INET6
	}
	addrs, err := nldump.NetnsAddrs(nsid, family)
	if err != nil {
		return 0, false, err
	}
	want := ip.Unmap()
	for _, a := range addrs {
		if a.IP == want {
			return a.Index, true, nil
		}
	}
	return 0, false, nil
}
