package prom

import (
	"maps"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// dnsRecord is an L7 DNS record of the proxy between (ns "a") asking and
// (ns "b") answering: a request, or the response (reply) with its rcode,
// addresses and answer record types.
func dnsRecord(reply bool, v api.Verdict, qtype string, rcode uint32, ips []string, rrtypes ...string) *api.Flow {
	f := conn(53, 17, api.EventUnknown, api.Counters{})
	f.Type, f.TrafficDirection, f.Verdict = api.FlowTypeL7, api.TrafficDirectionEgress, v
	typ := api.L7TypeRequest
	if reply {
		f.IsReply, typ = true, api.L7TypeResponse
		f.Source, f.Destination = f.Destination, f.Source
	}
	f.L7 = &api.L7{Type: typ, DNS: &api.DNS{Query: "example.com.", Qtypes: []string{qtype}, Rcode: rcode, IPs: ips,
		RRtypes: rrtypes, ObservationSource: "proxy"}}
	return f
}

func TestDNSMetricsAsHubbleCountsThem(t *testing.T) {
	m, reg := newTestMetrics(t, metrics.Options{})
	many := make([]string, 40)
	for _, f := range []*api.Flow{
		dnsRecord(false, api.VerdictForwarded, "A", 0, nil),
		dnsRecord(false, api.VerdictForwarded, "A", 0, nil),
		dnsRecord(false, api.VerdictDropped, "AAAA", 0, nil),
		dnsRecord(false, api.VerdictForwarded, "TYPE65280", 0, nil), // no series of its own
		dnsRecord(true, api.VerdictForwarded, "A", 0, []string{"198.18.0.9", "198.18.0.10"}, "CNAME", "A", "A"),
		dnsRecord(true, api.VerdictForwarded, "A", 3, nil),
		dnsRecord(true, api.VerdictError, "A", 2, nil),
		dnsRecord(true, api.VerdictForwarded, "TXT", 0, many, "TXT"), // ips_returned stops at 16
	} {
		m.Consume(f)
	}
	// By destination, ips_returned, qtypes, rcode, source.
	wantQueries := map[string]float64{
		"b,0,A,,a":                 2,
		"b,0,AAAA,Policy denied,a": 1,
		"b,0,other,,a":             1,
	}
	if got := series(t, reg, metrics.DNSQueriesTotal); !maps.Equal(got, wantQueries) {
		t.Errorf("queries = %v, want %v", got, wantQueries)
	}
	// A response goes from the server (b) to the asker (a), as Hubble's.
	wantResponses := map[string]float64{
		"a,2,A,No Error,b":            1,
		"a,0,A,Non-Existent Domain,b": 1,
		"a,0,A,Server Failure,b":      1,
		"a,16,TXT,No Error,b":         1,
	}
	if got := series(t, reg, metrics.DNSResponsesTotal); !maps.Equal(got, wantResponses) {
		t.Errorf("responses = %v, want %v", got, wantResponses)
	}
	// By destination, qtypes, source, type.
	wantTypes := map[string]float64{"a,A,b,A": 2, "a,A,b,CNAME": 1, "a,TXT,b,TXT": 1}
	if got := series(t, reg, metrics.DNSResponseTypesTotal); !maps.Equal(got, wantTypes) {
		t.Errorf("response types = %v, want %v", got, wantTypes)
	}
}

func TestDNSConsumeDoesNotAllocate(t *testing.T) {
	m, _ := newTestMetrics(t, metrics.Options{SourceContext: []metrics.Context{metrics.ContextWorkload}})
	q := dnsRecord(false, api.VerdictForwarded, "A", 0, nil)
	r := dnsRecord(true, api.VerdictForwarded, "A", 0, []string{"198.18.0.9"}, "A")
	m.Consume(q)
	m.Consume(r)
	if n := testing.AllocsPerRun(1000, func() { m.Consume(q); m.Consume(r) }); n != 0 {
		t.Errorf("Consume of DNS records allocates %v times on known label sets, want 0", n)
	}
}
