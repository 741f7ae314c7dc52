package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// pointFlows: the frontend's connection to the backend, one record of two
// observation points (forwarded at the frontend's veth, dropped by the
// backend's ingress policy at the backend's), then a connection seen at one
// point only.
func pointFlows(now time.Time) []api.Flow {
	paired := api.Flow{
		Time: now.Add(-2 * time.Second), Type: api.FlowTypeL3L4, Event: api.EventEnd,
		Verdict: api.VerdictDropped, DropReason: api.DropReasonPolicyDenied,
		IP:            api.IP{Source: ipFrontend, Destination: ipBackend, Version: api.IPv4},
		L4:            api.L4{Protocol: api.ProtoTCP, SourcePort: 40100, DestinationPort: 8080, TCPFlags: api.TCPFlagSYN},
		Interface:     api.Interface{Index: 12},
		InitiatorHook: api.TrafficDirectionEgress,
		Counters:      api.Counters{PacketsForward: 3, BytesForward: 180},
		Other: api.Observation{
			Interface: api.Interface{Index: 11}, InitiatorHook: api.TrafficDirectionIngress, Verdict: api.VerdictForwarded,
			Counters: api.Counters{PacketsForward: 3, BytesForward: 180, PacketsReply: 1, BytesReply: 54},
		},
	}
	single := api.Flow{
		Time: now.Add(-time.Second), Type: api.FlowTypeL3L4, Event: api.EventEnd, Verdict: api.VerdictForwarded,
		IP:            api.IP{Source: ipFrontend, Destination: ipDNS, Version: api.IPv4},
		L4:            api.L4{Protocol: api.ProtoUDP, SourcePort: 40200, DestinationPort: 53},
		Interface:     api.Interface{Index: 11},
		InitiatorHook: api.TrafficDirectionIngress,
		Counters:      api.Counters{PacketsForward: 1, BytesForward: 60, PacketsReply: 1, BytesReply: 90},
	}
	return []api.Flow{paired, single}
}

// A record of two observation points shows both, each with its interface,
// direction, verdict and own counts, as Hubble's per-point view serves
// them; a record of one point shows its interface as before.
func TestBrowserShowsBothObservationPointsOfAMergedRecord(t *testing.T) {
	ctx := uitest.Browser(t)
	l := startLab(t, 0, Options{}, apitest.NewSource(pointFlows(time.Now()), 0))
	run(t, ctx, pageLoad,
		chromedp.Navigate(l.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)
	waitJS(t, ctx, `document.querySelectorAll('[data-testid="flow-row"]:not([hidden])').length === 2`, 10*time.Second)
	var points []string
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')]
		.sort((a, b) => a.dataset.index - b.dataset.index).map(r => r.dataset.points + ' ' + r.querySelector('.c-dir').textContent)`, &points)
	if len(points) != 2 || points[0] != "1 egress" || points[1] != "2 ingress ⇄" {
		t.Errorf("rows' points and direction %q, want the single record's [1 egress] and the merged one's [2 ingress ⇄]", points)
	}

	detail := func(index string) string {
		t.Helper()
		run(t, ctx, 10*time.Second,
			chromedp.Click(chromedp.CSS(`[data-testid="flow-row"][data-index="`+index+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="detail-pane"]`)),
		)
		var text string
		eval(t, ctx, `document.querySelector('#detail-fields').innerText`, &text)
		return text
	}
	text := detail("1")
	for _, want := range []string{
		"Observed at\nlxcbackend- (12) · ingress · DROPPED (POLICY_DENIED) · 3 / 0 packets · 180 B / 0",
		"Also observed at\nlxcfrontend (11) · egress · FORWARDED · 3 / 1 packets · 180 B / 54 B",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("merged record's detail lacks %q:\n%s", want, text)
		}
	}
	screenshot(t, ctx, "observation-points.png")
	text = detail("0")
	if !strings.Contains(text, "Interface\nlxcfrontend (11)") || strings.Contains(text, "observed at") {
		t.Errorf("single record's detail: want its interface and no observation points:\n%s", text)
	}
}
