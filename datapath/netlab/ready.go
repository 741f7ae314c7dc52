package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// readyTimeout bounds how long AddPod waits for a new pod's link to carry
// traffic. The kernel applies carrier changes from a rate-limited worker
// (linkwatch), so with many links changing at once it can take a second.
const readyTimeout = 10 * time.Second

// brForwarding is a bridge port's state when it forwards (BR_STATE_FORWARDING).
const brForwarding = "3"

// waitReady waits until the pod's eth0 and its host veth are operationally
// up and the bridge forwards on the host veth, so traffic sent as soon as
// AddPod returns is not lost.
func (p *Pod) waitReady(h *netlink.Handle) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		state, err := p.linkState(h)
		if err != nil {
			return err
		}
		if state == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %s", readyTimeout, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// linkState says what keeps the pod's link from carrying traffic, or "".
func (p *Pod) linkState(h *netlink.Handle) (string, error) {
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return "", fmt.Errorf("find eth0 in %s: %w", p.NetNSName, err)
	}
	if s := eth.Attrs().OperState; s != netlink.OperUp {
		return "eth0 is " + s.String(), nil
	}
	host, err := netlink.LinkByName(p.HostVeth.Name)
	if err != nil {
		return "", fmt.Errorf("find veth %s: %w", p.HostVeth.Name, err)
	}
	if s := host.Attrs().OperState; s != netlink.OperUp {
		return p.HostVeth.Name + " is " + s.String(), nil
	}
	b, err := os.ReadFile(filepath.Join("/sys/class/net", p.HostVeth.Name, "brport/state"))
	if err != nil {
		return "", fmt.Errorf("read bridge port state of %s: %w", p.HostVeth.Name, err)
	}
	if s := strings.TrimSpace(string(b)); s != brForwarding {
		return fmt.Sprintf("bridge port %s is in state %s", p.HostVeth.Name, s), nil
	}
	return "", nil
}
