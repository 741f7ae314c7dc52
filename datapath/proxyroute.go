package datapath

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The policy routing of the redirect: packets marked ProxyMarkToProxy are
// looked up in ProxyRouteTable, whose one route per family is "local
// default dev lo", so they are delivered to the host's own sockets whatever
// their destination address (the proxy's transparent sockets).
const (
	ProxyRouteTable   = 2005
	proxyRulePriority = 9
)

// EnsureProxyRouting installs, in the host network namespace, the policy
// routing rule (fwmark ProxyMarkToProxy/ProxyMarkMask lookup
// ProxyRouteTable, for IPv4 and IPv6) and the table's local default routes,
// unless they are there. It is idempotent. They are never removed: without
// marked packets they route nothing, and a collector that stops while a
// redirect is pinned relies on them.
func EnsureProxyRouting() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("proxy routing: find lo: %w", err)
	}
	mask := ProxyMarkMask
	for _, fam := range []struct {
		family int
		dst    *net.IPNet
	}{
		{unix.AF_INET, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}},
		{unix.AF_INET6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}},
	} {
		rule := netlink.NewRule()
		rule.Family = fam.family
		rule.Mark = ProxyMarkToProxy
		rule.Mask = &mask
		rule.Table = ProxyRouteTable
		rule.Priority = proxyRulePriority
		have, err := netlink.RuleListFiltered(fam.family, rule,
			netlink.RT_FILTER_MARK|netlink.RT_FILTER_MASK|netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("proxy routing: list rules: %w", err)
		}
		if len(have) == 0 {
			if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("proxy routing: add rule %s: %w", rule, err)
			}
		}
		route := &netlink.Route{
			Family:    fam.family,
			Dst:       fam.dst,
			Type:      unix.RTN_LOCAL,
			Table:     ProxyRouteTable,
			LinkIndex: lo.Attrs().Index,
			Scope:     unix.RT_SCOPE_HOST,
		}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("proxy routing: local default route in table %d: %w", ProxyRouteTable, err)
		}
	}
	return nil
}
