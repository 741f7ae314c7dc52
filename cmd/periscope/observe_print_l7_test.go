package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
)

// l7PrintSamples are an HTTP and a DNS exchange, enriched, and a request
// whose URL carries terminal control.
func l7PrintSamples() []api.Flow {
	fe, be, dns := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.53")
	flows := apitest.HTTPExchange{Client: netip.AddrPortFrom(fe, 43210), Server: netip.AddrPortFrom(be, 8080),
		Method: "PUT", URL: "http://backend:8080/applicants/_create/103294", Code: 201, Latency: 12 * time.Millisecond,
	}.Flows(printTime)
	flows = append(flows, apitest.DNSExchange{Client: netip.AddrPortFrom(fe, 40000), Server: netip.AddrPortFrom(dns, 53),
		Query: "example.com.", IPs: []string{"198.18.0.10", "198.18.0.11"}, TTL: 300, Latency: time.Millisecond,
	}.Flows(printTime)...)
	evil := flows[0]
	evil.L7 = &api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: "GET", URL: "/\x1b[2J", Protocol: "HTTP/1.1"}}
	flows = append(flows, evil)
	names := map[netip.Addr]api.Endpoint{
		fe:  {Identity: 1234, Namespace: "default", PodName: "frontend"},
		be:  {Identity: 5678, Namespace: "default", PodName: "backend"},
		dns: {Identity: 99, Namespace: "kube-system", PodName: "coredns"},
	}
	for i := range flows {
		flows[i].Source, flows[i].Destination = names[flows[i].IP.Source], names[flows[i].IP.Destination]
	}
	return flows
}

func TestCompactPrinterWritesL7LinesLikeHubble(t *testing.T) {
	flows := l7PrintSamples()
	want := []string{
		"Nov 23 09:30:14.123: default/frontend:43210 (ID:1234) -> default/backend:8080 (ID:5678) EGRESS http-request FORWARDED (HTTP/1.1 PUT http://backend:8080/applicants/_create/103294)\n",
		"Nov 23 09:30:14.135: default/frontend:43210 (ID:1234) <- default/backend:8080 (ID:5678) EGRESS http-response FORWARDED (HTTP/1.1 201 12ms (PUT http://backend:8080/applicants/_create/103294))\n",
		"Nov 23 09:30:14.123: default/frontend:40000 (ID:1234) -> kube-system/coredns:53 (ID:99) EGRESS dns-request proxy FORWARDED (DNS Query example.com. A)\n",
		"Nov 23 09:30:14.124: default/frontend:40000 (ID:1234) <- kube-system/coredns:53 (ID:99) EGRESS dns-response proxy FORWARDED (DNS Answer \"198.18.0.10,198.18.0.11\" TTL: 300 (Proxy example.com. A))\n",
		"Nov 23 09:30:14.123: default/frontend:43210 (ID:1234) -> default/backend:8080 (ID:5678) EGRESS http-request FORWARDED (HTTP/1.1 GET /?[2J)\n",
	}
	for i := range flows {
		var out bytes.Buffer
		p, err := newPrinter("compact", &out, time.UTC, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Print(nil, &flows[i]); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != want[i] {
			t.Errorf("flow %d:\ngot  %q\nwant %q", i, got, want[i])
		}
	}
}

func TestTablePrinterNamesTheL7Type(t *testing.T) {
	var out bytes.Buffer
	p, err := newPrinter("table", &out, time.UTC, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range l7PrintSamples()[:2] {
		if err := p.Print(nil, &f); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"TIMESTAMP            SOURCE                            DESTINATION                       TYPE                  VERDICT    SUMMARY",
		"Nov 23 09:30:14.123  default/frontend:43210 (ID:1234)  default/backend:8080 (ID:5678)    http-request EGRESS   FORWARDED  HTTP/1.1 PUT http://backend:8080/applicants/_create/103294",
		"Nov 23 09:30:14.135  default/backend:8080 (ID:5678)    default/frontend:43210 (ID:1234)  http-response EGRESS  FORWARDED  HTTP/1.1 201 12ms (PUT http://backend:8080/applicants/_create/103294)",
		"",
	}, "\n")
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
