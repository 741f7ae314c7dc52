package hubble

import (
	"net"
	"reflect"
	"slices"
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

// The real hubble CLI's L7 filters select the L7 records Hubble's would:
// its flags, its --not (a blacklist), and dns_query, which it has no flag
// for, through --allowlist.
func TestHubbleCLIFiltersL7Flows(t *testing.T) {
	h := newHubbleCLI(t)
	col, l7 := startL7Collector(t)
	h.server = serveAddr(t, NewCollectorBackend(col))
	hr := newHubbleCLI(t)
	hr.server = serveAddr(t, NewRelayBackend(startRelay(t, []string{col.Addr().String()})))

	// l7: the HTTP request and its 201 response, the DNS query and its answer.
	tests := []struct {
		name    string
		filters []string
		want    []int // indices into l7
	}{
		{"protocol http", []string{"--protocol", "http"}, []int{0, 1}},
		{"protocol dns", []string{"--protocol", "dns"}, []int{2, 3}},
		{"a status prefix", []string{"--http-status", "2+"}, []int{1}},
		{"a status code", []string{"--http-status", "201"}, []int{1}},
		{"a status no response has", []string{"--protocol", "http", "--http-status", "5+"}, nil},
		{"a method in any case", []string{"--http-method", "put"}, []int{0, 1}},
		{"a method no record has", []string{"--http-method", "GET"}, nil},
		{"a path expression", []string{"--http-path", `^/applicants/_create/\d+$`}, []int{0, 1}},
		{"a URL expression", []string{"--http-url", `^http://backend-5c:8080/`}, []int{0, 1}},
		{"a header", []string{"--http-header", "content-type:application/json"}, []int{0}},
		{"not a status: a blacklist", []string{"--protocol", "http", "--not", "--http-status", "2+"}, []int{0}},
		{"with the l7 event type", []string{"--type", "l7", "--http-method", "PUT", "--http-status", "201"}, []int{1}},
		{"dns_query through --allowlist", []string{"--allowlist", `{"dns_query":["^example\\.com\\.$"]}`}, []int{2, 3}},
		{"a trace ID: its request and response", []string{"--trace-id", testTraceID}, []int{0, 1}},
		{"a trace ID no record has", []string{"--trace-id", "00f067aa0ba902b700f067aa0ba902b7"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCLIL7Selection(t, h, l7, tt.filters, tt.want)
		})
	}
	t.Run("through a relay, which pushes the chips down", func(t *testing.T) {
		checkCLIL7Selection(t, hr, l7, []string{"--protocol", "http", "--http-status", "2+"}, []int{1})
	})

	t.Run("an HTTP field beside event types without L7 is refused, as Hubble does", func(t *testing.T) {
		_, err := h.run(t, "observe", "--type", "trace", "--http-status", "200")
		if err == nil || !strings.Contains(err.Error(), "InvalidArgument") ||
			!strings.Contains(err.Error(), "http_status_code: filtering by an HTTP field needs the event type filter to match l7 events") {
			t.Errorf("got %v, want InvalidArgument naming http_status_code and the event types", err)
		}
	})
	t.Run("a trace ID that is no W3C one is refused naming the form", func(t *testing.T) {
		_, err := h.run(t, "observe", "--trace-id", "4BF92F3577B34DA6A3CE929D0E0E4736")
		if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "32 lower-case hex digits") {
			t.Errorf("got %v, want InvalidArgument explaining trace-id", err)
		}
	})
	t.Run("a bad status is refused naming it", func(t *testing.T) {
		_, err := h.run(t, "observe", "--http-status", "2xx")
		if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "http-status must be") {
			t.Errorf("got %v, want InvalidArgument explaining http-status", err)
		}
	})
}

// checkCLIL7Selection checks that `hubble observe --all -o json` with
// filters prints exactly the L7 records of l7 at want.
func checkCLIL7Selection(t *testing.T, h *hubbleCLI, l7 []api.Flow, filters []string, want []int) {
	t.Helper()
	args := append([]string{"observe", "--all", "-o", "json"}, filters...)
	var got []int
	for _, resp := range parseFlowsJSON(t, h.mustRun(t, args...)) {
		var f api.Flow
		if err := FlowFromProto(resp.GetFlow(), &f); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(l7, func(w api.Flow) bool { return w.UUID == f.UUID })
		if i < 0 {
			t.Errorf("hubble %s printed a flow that is none of the L7 records: %s", strings.Join(filters, " "), f.Summary())
			continue
		}
		got = append(got, i)
	}
	if !slices.Equal(got, want) {
		t.Errorf("hubble %s printed L7 records %v, want %v", strings.Join(filters, " "), got, want)
	}
}
