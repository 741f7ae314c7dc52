package ui

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// labPeersSource emits flows with peers that are no endpoint: the world,
// the host, and the frontend's IPv6 neighbour discovery from its
// link-local address to multicast groups (a router solicitation, and
// duplicate address detection from the unspecified address).
func labPeersSource(now time.Time) *apitest.Source {
	world := netip.MustParseAddr("203.0.113.9")
	flow := func(i int, src, dst netip.Addr, ifindex uint32, proto uint8, dport uint16, v api.Verdict) api.Flow {
		f := api.Flow{Time: now.Add(time.Duration(i) * time.Millisecond), Verdict: v, Type: api.FlowTypeL3L4, Event: api.EventStart,
			IP:        api.IP{Source: src, Destination: dst, Version: api.IPv4},
			L4:        api.L4{Protocol: proto, SourcePort: 40000, DestinationPort: dport},
			Interface: api.Interface{Index: ifindex}}
		if src.Is6() {
			f.IP.Version, f.L4 = api.IPv6, api.L4{Protocol: api.ProtoICMPv6, ICMPType: uint8(dport)}
		}
		f.UUID[0], f.UUID[6] = byte(200+i), 0x40
		return f
	}
	return apitest.NewL7Source([]api.Flow{
		flow(0, world, ipFrontend, 11, api.ProtoTCP, 443, api.VerdictDropped),
		flow(1, ipHost, ipBackend, 12, api.ProtoTCP, 8080, api.VerdictForwarded),
		flow(2, llFrontend, netip.MustParseAddr("ff02::2"), 11, 0, 133, api.VerdictForwarded),
		flow(3, netip.MustParseAddr("::"), netip.MustParseAddr("ff02::1:ff00:f"), 11, 0, 135, api.VerdictForwarded),
		flow(4, llFrontend, netip.MustParseAddr("ff02::16"), 11, 0, 143, api.VerdictForwarded),
	}, 0)
}

// TestBrowserNamesPeersByReservedIdentity: the world and the host are
// nodes of the service map by their reserved identities, a pod's
// link-local address is the pod's, and multicast groups are no nodes.
func TestBrowserNamesPeersByReservedIdentity(t *testing.T) {
	ctx := uitest.Browser(t)
	l := startLab(t, 0, Options{}, labPeersSource(time.Now()))
	run(t, ctx, pageLoad,
		chromedp.Navigate(l.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)
	waitJS(t, ctx, `document.querySelectorAll('[data-testid="flow-row"]:not([hidden])').length === 5`, 10*time.Second)
	var srcs []string
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')]
		.sort((a, b) => b.dataset.index - a.dataset.index).map(r => r.querySelector('.c-src').textContent)`, &srcs)
	if want := []string{"world 203.0.113.9", "host 10.0.0.1", "default/frontend-6f7c9", "::", "default/frontend-6f7c9"}; !slices.Equal(srcs, want) {
		t.Errorf("sources %q, want %q", srcs, want)
	}
	waitJS(t, ctx, `document.querySelectorAll('[data-testid="map-edge"]').length >= 2`, 10*time.Second)
	time.Sleep(600 * time.Millisecond) // one more redraw: nothing else may come
	var nodes, edges []string
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="map-node"]')].map(n => n.dataset.key).sort()`, &nodes)
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="map-edge"]')].map(e => e.dataset.from + ' -> ' + e.dataset.to).sort()`, &edges)
	if want := []string{"default/backend", "default/frontend", "host", "world"}; !slices.Equal(nodes, want) {
		t.Errorf("map nodes %q, want %q (no multicast group, no link-local or unspecified address)", nodes, want)
	}
	if want := []string{"host -> default/backend", "world -> default/frontend"}; !slices.Equal(edges, want) {
		t.Errorf("map edges %q, want %q", edges, want)
	}
	screenshot(t, ctx, "peers.png")
}
