package ui

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// namedFlows: the frontend reaches a world address its DNS lookup named
// api.example.com, and is dropped on its way to one named ads.example.net.
func namedFlows(now time.Time) []api.Flow {
	flow := func(dst string, port uint16, names []string, v api.Verdict, at time.Duration) api.Flow {
		return api.Flow{Time: now.Add(at), Type: api.FlowTypeL3L4, Verdict: v, TrafficDirection: api.TrafficDirectionEgress,
			IP: api.IP{Source: ipFrontend, Destination: netip.MustParseAddr(dst), Version: api.IPv4},
			L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 40001, DestinationPort: port}, DestinationNames: names}
	}
	return []api.Flow{
		flow("198.51.100.7", 443, []string{"api.example.com"}, api.VerdictForwarded, -2*time.Second),
		flow("198.51.100.8", 443, []string{"ads.example.net", "tracker.example.net"}, api.VerdictDropped, -time.Second),
	}
}

func TestBrowserShowsDNSNamesAndFiltersByThem(t *testing.T) {
	ctx := uitest.Browser(t)
	l := startLab(t, 0, Options{}, apitest.NewSource(namedFlows(time.Now()), 0))
	run(t, ctx, pageLoad,
		chromedp.Navigate(l.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)
	waitJS(t, ctx, `document.querySelectorAll('[data-testid="flow-row"]:not([hidden])').length === 2`, 10*time.Second)
	var dsts []string
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')]
		.sort((a, b) => a.dataset.index - b.dataset.index).map(r => r.querySelector('.c-dst').textContent)`, &dsts)
	if want := []string{"ads.example.net, tracker.example.net", "api.example.com"}; !slices.Equal(dsts, want) {
		t.Errorf("destinations %q, want the names %q", dsts, want)
	}

	t.Run("the map draws a world peer by its name", func(t *testing.T) {
		waitJS(t, ctx, `document.querySelectorAll('[data-testid="map-edge"]').length >= 2`, 10*time.Second)
		var edges []string
		eval(t, ctx, `[...document.querySelectorAll('[data-testid="map-edge"]')].map(e => e.dataset.to).sort()`, &edges)
		if want := []string{"ads.example.net", "api.example.com"}; !slices.Equal(edges, want) {
			t.Errorf("edges to %q, want %q", edges, want)
		}
	})

	t.Run("a dns chip in the URL selects the name's flows", func(t *testing.T) {
		run(t, ctx, pageLoad,
			chromedp.Navigate(l.base+"/?filter=to%3Adns%3D*.example.net"),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
		)
		waitJS(t, ctx, `document.querySelectorAll('[data-testid="flow-row"]:not([hidden])').length === 1`, 10*time.Second)
		var text string
		eval(t, ctx, `document.querySelector('[data-testid="flow-row"]:not([hidden])').textContent`, &text)
		if !strings.Contains(text, "ads.example.net") || !strings.Contains(text, "DROPPED") {
			t.Errorf("the row the chip selects: %q", text)
		}
	})
}
