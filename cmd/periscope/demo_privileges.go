package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// demoCaps are the capabilities the demo uses, and why.
var demoCaps = []struct {
	bit  uint
	name string
}{
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}, // network namespaces, bpffs
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, // links, addresses, TC attach
	{unix.CAP_BPF, "CAP_BPF"},             // load programs and maps
	{unix.CAP_PERFMON, "CAP_PERFMON"},     // tracing programs
}

// demoPrivileges says which privilege the demo lacks, if any.
func demoPrivileges() error {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root: it creates network namespaces (CAP_SYS_ADMIN) " +
			"and loads eBPF (CAP_BPF, CAP_NET_ADMIN); run: sudo make demo")
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	var missing []string
	for _, c := range demoCaps {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the demo runs as root but lacks %s (a restricted container?): "+
			"it creates network namespaces (CAP_SYS_ADMIN) and loads eBPF (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)",
			strings.Join(missing, ", "))
	}
	return nil
}
