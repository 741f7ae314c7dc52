package netlab

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolSGRO is ETHTOOL_SGRO from linux/ethtool.h.
const ethtoolSGRO = 0x2c

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd, data uint32
}

// ethtoolIfreq is struct ifreq with ifr_data set.
type ethtoolIfreq struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// SetGRO turns generic receive offload of the interface named ifname, in
// the calling thread's network namespace, on or off (`ethtool -K ifname
// gro on|off`, without needing ethtool). A veth with GRO on receives
// frames its peer's XDP redirects to it (ndo_xdp_xmit) without an XDP
// program of its own.
func SetGRO(ifname string, on bool) error {
	if len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("set gro of %q: name too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set gro of %s: socket: %w", ifname, err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: ethtoolSGRO}
	if on {
		v.data = 1
	}
	var ifr ethtoolIfreq
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("set gro of %s to %v: %w", ifname, on, errno)
	}
	return nil
}
