package netlab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// From linux/ethtool.h.
const (
	ethtoolGSTRINGS  = 0x1b
	ethtoolGSTATS    = 0x1d
	ethtoolGSSETINFO = 0x37
	ethSSStats       = 1
	ethGStringLen    = 32
)

// EthtoolStats are the interface's driver statistics by name (`ethtool -S
// ifname`, without needing ethtool), in the calling thread's network
// namespace. For a veth, tx_queue_<n>_xdp_xmit and
// tx_queue_<n>_xdp_xmit_errors count the frames XDP redirected out of it
// that its peer's receive ring took and refused.
func EthtoolStats(ifname string) (map[string]uint64, error) {
	// struct ethtool_sset_info: cmd, reserved, sset_mask, data[1].
	info := make([]byte, 4+4+8+4)
	ne := binary.NativeEndian
	ne.PutUint32(info[0:], ethtoolGSSETINFO)
	ne.PutUint64(info[8:], 1<<ethSSStats)
	if err := ethtoolIoctl(ifname, info); err != nil {
		return nil, fmt.Errorf("ethtool stats of %s: count: %w", ifname, err)
	}
	if ne.Uint64(info[8:])&(1<<ethSSStats) == 0 {
		return map[string]uint64{}, nil
	}
	n := int(ne.Uint32(info[16:]))
	// struct ethtool_gstrings: cmd, string_set, len, data.
	strs := make([]byte, 12+n*ethGStringLen)
	ne.PutUint32(strs[0:], ethtoolGSTRINGS)
	ne.PutUint32(strs[4:], ethSSStats)
	ne.PutUint32(strs[8:], uint32(n))
	if err := ethtoolIoctl(ifname, strs); err != nil {
		return nil, fmt.Errorf("ethtool stats of %s: names: %w", ifname, err)
	}
	// struct ethtool_stats: cmd, n_stats, data (u64s).
	vals := make([]byte, 8+8*n)
	ne.PutUint32(vals[0:], ethtoolGSTATS)
	ne.PutUint32(vals[4:], uint32(n))
	if err := ethtoolIoctl(ifname, vals); err != nil {
		return nil, fmt.Errorf("ethtool stats of %s: values: %w", ifname, err)
	}
	out := make(map[string]uint64, n)
	for i := range n {
		name := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if z := bytes.IndexByte(name, 0); z >= 0 {
			name = name[:z]
		}
		out[string(name)] = ne.Uint64(vals[8+8*i:])
	}
	return out, nil
}

// ethtoolIoctl runs SIOCETHTOOL on ifname with buf as ifr_data.
func ethtoolIoctl(ifname string, buf []byte) error {
	if len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("%q: name too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	var ifr ethtoolIfreq
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&buf[0])
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return errno
	}
	return nil
}
