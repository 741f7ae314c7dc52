package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// RedirectDirection says whose connections a Redirect steers, seen from its
// endpoint (the values of api.TrafficDirection and the kernel's policy_dir).
type RedirectDirection uint8

// RedirectDirection values.
const (
	// RedirectIngress steers connections to the endpoint (e.g. HTTP to a
	// server pod), caught at the initiator's hook.
	RedirectIngress RedirectDirection = 1
	// RedirectEgress steers the endpoint's own connections (e.g. its DNS
	// queries), caught at its host-side veth.
	RedirectEgress RedirectDirection = 2
)

// String returns "ingress" or "egress".
func (d RedirectDirection) String() string {
	switch d {
	case RedirectIngress:
		return "ingress"
	case RedirectEgress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// The skb->mark bits of the redirect (bpf/flow.h, enum proxy_mark). Only
// the bits of ProxyMarkMask are Periscope's.
const (
	ProxyMarkMask = uint32(tcFlowProxyMarkPROXY_MARK_MASK)
	// ProxyMarkToProxy is set by the TC program on packets it steers to the
	// proxy; the policy routing rule delivers them locally.
	ProxyMarkToProxy = uint32(tcFlowProxyMarkPROXY_MARK_TO_PROXY)
	// ProxyMarkUpstream is the SO_MARK a proxy must set on its upstream
	// sockets (those it opens from the client's address towards the
	// original destination): their connections are never redirected and
	// their replies are steered back to the proxy.
	ProxyMarkUpstream = uint32(tcFlowProxyMarkPROXY_MARK_UPSTREAM)
)

// Redirect steers the connections of one (endpoint, direction, protocol,
// destination port) to a local proxy's transparent socket on 127.0.0.1
// and ::1 at ProxyPort (IP_TRANSPARENT: a TCP listener, or a UDP socket).
type Redirect struct {
	// Endpoint is the endpoint's id, its host-side ifindex.
	Endpoint uint32
	// Addrs are the endpoint's addresses: required for RedirectIngress,
	// whose connections are recognised by their destination address.
	Addrs     []netip.Addr
	Direction RedirectDirection
	// Proto is 6 (TCP) or 17 (UDP).
	Proto uint8
	// Port is the destination port of the connections steered.
	Port uint16
	// ProxyPort is the proxy socket's port.
	ProxyPort uint16
	// Policy: the proxy enforces L7 policy on the port (RedirectIngress),
	// so a connection no hook could steer to it (one from an interface
	// without the datapath, or from the host itself) is dropped instead
	// of delivered directly (RedirectStats.Bypass).
	Policy bool
}

// RedirectStats are the kernel's redirect counters since Load.
type RedirectStats struct {
	Connections uint64 // connections steered to the proxy
	NoProxy     uint64 // packets dropped because no proxy socket was there (fail closed)
	Upstream    uint64 // connections of the proxy to upstreams seen leaving
	Bypass      uint64 // connections to a Policy redirect's port that did not come through the proxy: dropped
}

// redirectPins are the redirect maps, pinned by name beside the policy
// maps and kept and adopted with them.
var redirectPins = []string{"redirect", "host_mac"}

// SetRedirects makes rs the complete set of redirects. Entries to add or
// change are written first and stale ones deleted after: each entry is
// replaced atomically, so a connection whose redirect stays is never
// judged without it. It installs the policy routing that delivers steered
// packets locally (see EnsureProxyRouting) when rs is not empty. A redirect
// applies to TCP connections that start afterwards and to the next datagram
// of any UDP flow, one that began direct included; a removed one leaves
// established TCP connections with the proxy until they end, and sends a
// UDP flow's next datagram direct. An established TCP connection to a port
// an endpoint's EGRESS redirect covers that did not go to the proxy is
// dropped: when SetRedirects adds such a redirect with a policy in force,
// it applies that policy again as a new revision, which re-judges them.
func (d *Datapath) SetRedirects(rs []Redirect) error {
	want := map[tcFlowRedirectKey]tcFlowRedirectValue{}
	for _, r := range rs {
		keys, err := redirectKeys(r)
		if err != nil {
			return fmt.Errorf("set redirects: %w", err)
		}
		v := tcFlowRedirectValue{ProxyPort: htons(r.ProxyPort)}
		if r.Policy {
			v.Flags = uint8(tcFlowRedirectFlagREDIRECT_FLAG_POLICY)
		}
		for _, k := range keys {
			if old, dup := want[k]; dup && old != v {
				return fmt.Errorf("set redirects: endpoint %d %s %d/%d redirected to two proxy ports",
					r.Endpoint, r.Direction, r.Port, r.Proto)
			}
			want[k] = v
		}
	}
	added, err := d.writeRedirects(want, rs)
	if err != nil || !added {
		return err
	}
	// Established TCP connections to the ports an endpoint's egress
	// redirect now covers did not go to the proxy: a new revision
	// re-judges them (egress_bypass_verdict ends them).
	d.policyMu.Lock()
	defer d.policyMu.Unlock()
	if d.lastPolicy == nil {
		return nil // no policy in force: nothing the proxy enforces to escape
	}
	if err := d.applyLocked(d.lastPolicy); err != nil {
		return fmt.Errorf("set redirects: re-judge established connections: %w", err)
	}
	return nil
}

// writeRedirects makes want the redirect map's entries (rs the
// redirects they came from) and reports whether it added an EGRESS TCP
// entry.
func (d *Datapath) writeRedirects(want map[tcFlowRedirectKey]tcFlowRedirectValue, rs []Redirect) (bool, error) {
	d.redirectMu.Lock()
	defer d.redirectMu.Unlock()
	if d.objs.Redirect == nil {
		return false, errors.New("set redirects: datapath closed")
	}
	added := false
	for k := range want {
		var old tcFlowRedirectValue
		if k.Direction == uint8(RedirectEgress) && k.Proto == unix.IPPROTO_TCP && d.objs.Redirect.Lookup(&k, &old) != nil {
			added = true
		}
	}
	if len(want) > 0 {
		if err := EnsureProxyRouting(); err != nil {
			return false, fmt.Errorf("set redirects: %w", err)
		}
	}
	for k, v := range want {
		if err := d.objs.Redirect.Put(&k, &v); err != nil {
			return false, fmt.Errorf("set redirects: write endpoint %d port %d: %w", k.EndpointId, ntohs(k.Dport), err)
		}
	}
	var stale []tcFlowRedirectKey
	var k tcFlowRedirectKey
	var v tcFlowRedirectValue
	it := d.objs.Redirect.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return false, fmt.Errorf("set redirects: list entries: %w", err)
	}
	for i := range stale {
		if err := d.objs.Redirect.Delete(&stale[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return false, fmt.Errorf("set redirects: delete a stale entry: %w", err)
		}
	}
	d.redirects = slices.Clone(rs)
	d.log.Info("redirects set", "redirects", len(rs), "entries", len(want), "removed", len(stale))
	return added, nil
}

// Redirects returns the redirects of the last SetRedirects of this Datapath.
func (d *Datapath) Redirects() []Redirect {
	d.redirectMu.Lock()
	defer d.redirectMu.Unlock()
	return slices.Clone(d.redirects)
}

// redirectKeys are the kernel keys of r: one for an egress redirect, one
// per address for an ingress one.
func redirectKeys(r Redirect) ([]tcFlowRedirectKey, error) {
	if r.Proto != unix.IPPROTO_TCP && r.Proto != unix.IPPROTO_UDP {
		return nil, fmt.Errorf("endpoint %d port %d: protocol %d is neither TCP (6) nor UDP (17)", r.Endpoint, r.Port, r.Proto)
	}
	if r.Port == 0 || r.ProxyPort == 0 {
		return nil, fmt.Errorf("endpoint %d: port %d to proxy port %d: both must be set", r.Endpoint, r.Port, r.ProxyPort)
	}
	base := tcFlowRedirectKey{Direction: uint8(r.Direction), Proto: r.Proto, Dport: htons(r.Port)}
	switch r.Direction {
	case RedirectEgress:
		if r.Endpoint == 0 {
			return nil, fmt.Errorf("egress redirect of port %d: no endpoint", r.Port)
		}
		base.EndpointId = r.Endpoint
		return []tcFlowRedirectKey{base}, nil
	case RedirectIngress:
		if len(r.Addrs) == 0 {
			return nil, fmt.Errorf("ingress redirect of endpoint %d port %d: no address", r.Endpoint, r.Port)
		}
		keys := make([]tcFlowRedirectKey, 0, len(r.Addrs))
		for _, a := range r.Addrs {
			k := base
			a = a.Unmap()
			switch {
			case a.Is4():
				k.Family = 4
				b := a.As4()
				copy(k.Addr[:], b[:])
			case a.Is6():
				k.Family = 6
				k.Addr = a.As16()
			default:
				return nil, fmt.Errorf("ingress redirect of endpoint %d: invalid address %v", r.Endpoint, a)
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	return nil, fmt.Errorf("endpoint %d port %d: unknown direction %d", r.Endpoint, r.Port, r.Direction)
}

// RedirectStats returns the kernel's redirect counters.
func (d *Datapath) RedirectStats() (RedirectStats, error) {
	var s RedirectStats
	for _, slot := range []struct {
		n   tcFlowRedirectStat
		dst *uint64
	}{
		{tcFlowRedirectStatREDIRECT_STAT_CONNECTIONS, &s.Connections},
		{tcFlowRedirectStatREDIRECT_STAT_NO_PROXY, &s.NoProxy},
		{tcFlowRedirectStatREDIRECT_STAT_UPSTREAM, &s.Upstream},
		{tcFlowRedirectStatREDIRECT_STAT_BYPASS, &s.Bypass},
	} {
		var per []uint64
		if err := d.objs.RedirectStats.Lookup(uint32(slot.n), &per); err != nil {
			return s, fmt.Errorf("read redirect counter %d: %w", slot.n, err)
		}
		for _, c := range per {
			*slot.dst += c
		}
	}
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return v<<8 | v>>8 }
