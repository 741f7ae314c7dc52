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

// labL7Source emits, next to the lab, what a proxy would: an HTTP exchange
// frontend → backend, one that failed, and a DNS exchange frontend →
// coredns.
func labL7Source(now time.Time) *apitest.Source {
	fe, be := netip.AddrPortFrom(ipFrontend, 43210), netip.AddrPortFrom(ipBackend, 8080)
	flows := apitest.HTTPExchange{Client: fe, Server: be, Method: "PUT",
		URL: "http://backend:8080/applicants/_create/103294", Code: 201, Latency: 12*time.Millisecond + 400*time.Microsecond,
		RequestHeaders: []api.HTTPHeader{{Key: "content-type", Value: "application/json"}},
		TraceID:        "4bf92f3577b34da6a3ce929d0e0e4736",
	}.Flows(now.Add(-3 * time.Second))
	flows = append(flows, apitest.HTTPExchange{Client: fe, Server: be, Method: "GET", URL: "/healthz", Code: 503,
		Latency: 2 * time.Millisecond}.Flows(now.Add(-2*time.Second))...)
	flows = append(flows, apitest.DNSExchange{Client: netip.AddrPortFrom(ipFrontend, 40000), Server: netip.AddrPortFrom(ipDNS, 53),
		Query: "example.com.", IPs: []string{"198.18.0.10", "198.18.0.11"}, TTL: 300, Latency: time.Millisecond,
	}.Flows(now.Add(-time.Second))...)
	return apitest.NewL7Source(flows, 0)
}

func TestBrowserShowsL7InfoAndTheL7Record(t *testing.T) {
	ctx := uitest.Browser(t)
	l := startLab(t, 0, Options{}, labL7Source(time.Now()))
	run(t, ctx, pageLoad,
		chromedp.Navigate(l.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)
	waitJS(t, ctx, `document.querySelectorAll('[data-testid="flow-row"]:not([hidden])').length === 6`, 10*time.Second)
	var cells []string
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')]
		.sort((a, b) => a.dataset.index - b.dataset.index).map(r => r.querySelector('.c-l7').textContent)`, &cells)
	want := []string{ // newest on top
		"← 198.18.0.10, 198.18.0.11",
		"? example.com. A",
		"← 503 Service Unavailable 2ms",
		"→ GET /healthz",
		"← 201 Created 12ms",
		"→ PUT /applicants/_create/103294",
	}
	if !slices.Equal(cells, want) {
		t.Errorf("L7 INFO column %q, want %q", cells, want)
	}
	var header string
	eval(t, ctx, `document.querySelector('.thead').children[3].textContent`, &header)
	if !strings.EqualFold(header, "L7 info") {
		t.Errorf("the fourth column is %q, want L7 info", header)
	}

	t.Run("the map draws the exchange from the client", func(t *testing.T) {
		waitJS(t, ctx, `document.querySelectorAll('[data-testid="map-edge"]').length >= 2`, 10*time.Second)
		var edges []string
		eval(t, ctx, `[...document.querySelectorAll('[data-testid="map-edge"]')].map(e => e.dataset.from + ' -> ' + e.dataset.to).sort()`, &edges)
		if want := []string{"default/frontend -> default/backend", "default/frontend -> kube-system/coredns"}; !slices.Equal(edges, want) {
			t.Errorf("edges %q, want %q", edges, want)
		}
	})

	t.Run("the detail pane shows the L7 record", func(t *testing.T) {
		run(t, ctx, 10*time.Second,
			chromedp.Click(chromedp.CSS(`[data-testid="flow-row"][data-index="4"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="detail-pane"]`)),
		)
		var text string
		eval(t, ctx, `document.querySelector('[data-testid="detail-pane"]').innerText`, &text)
		for _, want := range []string{"HTTP RESPONSE", "PUT http://backend:8080/applicants/_create/103294", "201 Created",
			"12.4 ms", "HTTP/1.1", `"l7": {`, `"latency_ns": "12400000"`, "HTTP/1.1 201 12ms (PUT http://backend:8080/applicants/_create/103294)",
			"Trace ID", "4bf92f3577b34da6a3ce929d0e0e4736"} {
			if !strings.Contains(text, want) {
				t.Errorf("detail pane lacks %q:\n%s", want, text)
			}
		}
		run(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="flow-row"][data-index="0"]`)))
		waitJS(t, ctx, `document.querySelector('[data-testid="detail-pane"]').innerText.includes('DNS answer')`, 5*time.Second)
		eval(t, ctx, `document.querySelector('[data-testid="detail-pane"]').innerText`, &text)
		for _, want := range []string{"DNS RESPONSE", "example.com. A", "198.18.0.10, 198.18.0.11", "NOERROR", "300 s", "proxy"} {
			if !strings.Contains(text, want) {
				t.Errorf("DNS detail pane lacks %q:\n%s", want, text)
			}
		}
		screenshot(t, ctx, "l7.png")
	})
}
