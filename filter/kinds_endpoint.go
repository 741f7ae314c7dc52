package filter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// The kinds that test an endpoint: ip, label, pod, namespace, workload,
// identity.

func endpoint(fl *api.Flow, s side) *api.Endpoint {
	if s == sideTo {
		return &fl.Destination
	}
	return &fl.Source
}

func parseIP(raw string) (value, error) {
	if strings.Contains(raw, "/") {
		p, err := netip.ParsePrefix(raw)
		if err != nil {
			return value{}, fmt.Errorf("ip must be an address or a CIDR prefix: %w", err)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		return value{text: p.String(), prefix: p}, nil
	}
	a, err := netip.ParseAddr(raw)
	if err != nil {
		return value{}, fmt.Errorf("ip must be an address or a CIDR prefix: %w", err)
	}
	a = a.Unmap()
	return value{text: a.String(), prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

func matchIP(v *value, fl *api.Flow, s side) bool {
	a := fl.IP.Source
	if s == sideTo {
		a = fl.IP.Destination
	}
	return a.IsValid() && v.prefix.Contains(a.Unmap())
}

func parseLabel(raw string) (value, error) {
	sel, err := parseSelector(raw)
	if err != nil {
		return value{}, err
	}
	return value{text: sel.String(), sel: sel}, nil
}

func matchLabel(v *value, fl *api.Flow, s side) bool {
	return v.sel.matches(endpoint(fl, s).Labels)
}

func parsePod(raw string) (value, error) {
	ns, name, ok := strings.Cut(raw, "/")
	if !ok {
		return value{text: raw, name: raw}, nil
	}
	if ns == "" || strings.Contains(name, "/") {
		return value{}, fmt.Errorf("pod must be name or namespace/name")
	}
	return value{text: raw, ns: ns, name: name}, nil
}

func matchPod(v *value, fl *api.Flow, s side) bool {
	ep := endpoint(fl, s)
	if v.ns != "" {
		return ep.Namespace == v.ns && strings.HasPrefix(ep.PodName, v.name)
	}
	return ep.PodName != "" && strings.HasPrefix(ep.PodName, v.name)
}

func parseName(raw string) (value, error) {
	return value{text: raw, name: raw}, nil
}

func matchNamespace(v *value, fl *api.Flow, s side) bool {
	return endpoint(fl, s).Namespace == v.name
}

func matchWorkload(v *value, fl *api.Flow, s side) bool {
	return endpoint(fl, s).Workload == v.name
}

func parseIdentity(raw string) (value, error) {
	n, err := strconv.ParseUint(raw, 10, 32)
	if err != nil {
		return value{}, fmt.Errorf("identity must be a number 0-4294967295")
	}
	return value{text: strconv.FormatUint(n, 10), num: uint32(n)}, nil
}

func matchIdentity(v *value, fl *api.Flow, s side) bool {
	return endpoint(fl, s).Identity == v.num
}
