package hubble

import (
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
)

// startL7Collector runs a collector with the canned L3/L4 flows and, as a
// second source, the L7 test source's HTTP and DNS exchanges.
func startL7Collector(t *testing.T) (*collector.Collector, []api.Flow) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l7 := l7TestFlows()[:4] // HTTP and DNS
	for i := range l7 {
		l7[i].Source, l7[i].NodeName = api.Endpoint{}, "" // the collector enriches
	}
	c, err := collector.New(collector.Options{Topology: topology("node1"), Listener: ln, Version: "test",
		Sources: []collector.Source{apitest.NewSource(testFlows(), 0), apitest.NewL7Source(l7, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "node1", c)
	waitFor(t, "every flow stored", func() bool { return c.Store().Seen() == uint64(len(testFlows())+len(l7)) })
	return c, l7
}

func TestHubbleCLIPrintsL7Flows(t *testing.T) {
	h := newHubbleCLI(t)
	col, l7 := startL7Collector(t)
	h.server = serveAddr(t, NewCollectorBackend(col))

	t.Run("the JSON carries the L7 records", func(t *testing.T) { checkCLIL7JSON(t, h, l7) })
	t.Run("through a relay too", func(t *testing.T) {
		hr := newHubbleCLI(t)
		hr.server = serveAddr(t, NewRelayBackend(startRelay(t, []string{col.Addr().String()})))
		checkCLIL7JSON(t, hr, l7)
	})

	t.Run("the compact printer shows requests and responses", func(t *testing.T) {
		out := h.mustRun(t, "observe", "--all", "--color", "never")
		for _, want := range []string{
			"default/frontend-7d4:40100 (ID:", ") -> shop/backend-5c:8080 (ID:",
			" http-request FORWARDED (HTTP/1.1 PUT http://backend-5c:8080/applicants/_create/103294)",
			") <- shop/backend-5c:8080 (ID:",
			" http-response FORWARDED (HTTP/1.1 201 12ms (PUT http://backend-5c:8080/applicants/_create/103294))",
			" dns-request proxy FORWARDED (DNS Query example.com. A)",
			` dns-response proxy FORWARDED (DNS Answer "192.0.2.9" TTL: 300 (Proxy example.com. A))`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("compact output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("type l7 selects the L7 flows", func(t *testing.T) {
		resps := parseFlowsJSON(t, h.mustRun(t, "observe", "--all", "--type", "l7", "-o", "json"))
		if len(resps) != len(l7) {
			t.Errorf("hubble observe --type l7 printed %d flows, want %d", len(resps), len(l7))
		}
	})
}

// checkCLIL7JSON checks that `hubble observe -o json` prints the L7
// records as the source emitted them, enriched.
func checkCLIL7JSON(t *testing.T, h *hubbleCLI, l7 []api.Flow) {
	t.Helper()
	var got []api.Flow
	for _, resp := range parseFlowsJSON(t, h.mustRun(t, "observe", "--all", "-o", "json")) {
		var f api.Flow
		if err := FlowFromProto(resp.GetFlow(), &f); err != nil {
			t.Fatal(err)
		}
		if f.L7 != nil {
			got = append(got, f)
		}
	}
	if len(got) != len(l7) {
		t.Fatalf("hubble printed %d L7 flows, want %d", len(got), len(l7))
	}
	for i := range l7 {
		if !reflect.DeepEqual(got[i].L7, l7[i].L7) || got[i].TrafficDirection != l7[i].TrafficDirection || got[i].IsReply != l7[i].IsReply {
			t.Errorf("L7 flow %d: hubble printed %+v (%v, reply %v), want %+v", i, got[i].L7, got[i].TrafficDirection, got[i].IsReply, l7[i].L7)
		}
		if got[i].Source.PodName == "" || got[i].Destination.PodName == "" || got[i].Source.Identity == 0 {
			t.Errorf("L7 flow %d not enriched: %+v → %+v", i, got[i].Source, got[i].Destination)
		}
	}
}
