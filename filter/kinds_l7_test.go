package filter

import (
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// sampleTraceID is the trace of l7SampleFlows' "200".
const sampleTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// L7 flows the L7 kinds' tests are written against, by name; tcpFlow (no
// L7 record) is among them as "tcp".
func l7SampleFlows() map[string]*api.Flow {
	httpFlow := func(typ api.L7FlowType, h api.HTTP) *api.Flow {
		f := *tcpFlow
		f.Type, f.L7 = api.FlowTypeL7, &api.L7{Type: typ, HTTP: &h}
		return &f
	}
	dnsFlow := func(typ api.L7FlowType, d api.DNS) *api.Flow {
		f := *udpFlow
		f.Type, f.L7 = api.FlowTypeL7, &api.L7{Type: typ, DNS: &d}
		return &f
	}
	both := dnsFlow(api.L7TypeRequest, api.DNS{Query: "both.example."})
	both.L7.HTTP = &api.HTTP{Method: "GET", URL: "/both", Code: 500}
	kafka := *tcpFlow
	kafka.Type, kafka.L7 = api.FlowTypeL7, &api.L7{Type: api.L7TypeRequest, Kafka: &api.Kafka{Topic: "orders"}}
	ok := httpFlow(api.L7TypeResponse, api.HTTP{Code: 200, Method: "get", URL: "http://api.example.com:8080/v1/users%2F7?x=1"})
	ok.L7.TraceID = sampleTraceID
	return map[string]*api.Flow{
		"tcp": tcpFlow,
		"get": httpFlow(api.L7TypeRequest, api.HTTP{Method: "GET", URL: "http://api.example.com:8080/v1/users%2F7?x=1",
			Protocol: "HTTP/1.1", Headers: []api.HTTPHeader{{Key: "accept", Value: "*/*"}, {Key: ":authority", Value: "api.example.com"}}}),
		"200": ok,
		"503": httpFlow(api.L7TypeResponse, api.HTTP{Code: 503, Method: "POST", URL: "/v2/orders",
			Headers: []api.HTTPHeader{{Key: "server", Value: "envoy"}, {Key: "x-empty"}}}),
		"5030":   httpFlow(api.L7TypeResponse, api.HTTP{Code: 5030, Method: "PATCH", URL: "http://[fd00::1]:80/v3"}),
		"99":     httpFlow(api.L7TypeResponse, api.HTTP{Code: 99, Method: "K\u212a", URL: "no-slash"}),
		"query":  dnsFlow(api.L7TypeRequest, api.DNS{Query: "www.example.com.", Qtypes: []string{"A"}}),
		"answer": dnsFlow(api.L7TypeResponse, api.DNS{Query: "www.example.com.", IPs: []string{"192.0.2.1"}}),
		"both":   both,
		"kafka":  &kafka,
	}
}

func TestL7KindsFollowHubbleSemantics(t *testing.T) {
	tests := []struct {
		name  string
		chips []string
		want  []string // names of l7SampleFlows that match
	}{
		// protocol
		{"protocol http matches flows carrying an HTTP record", []string{"protocol=http"}, []string{"200", "503", "5030", "99", "get"}},
		{"protocol dns matches DNS records, and one that breaks the one-of as DNS", []string{"protocol=DNS"}, []string{"answer", "both", "query"}},
		{"protocol kafka", []string{"protocol=kafka"}, []string{"kafka"}},
		{"an L4 protocol matches L7 flows too", []string{"protocol=udp"}, []string{"answer", "both", "query"}},
		{"L4 and L7 protocols OR", []string{"protocol=kafka", "protocol=udp"}, []string{"answer", "both", "kafka", "query"}},
		{"not http", []string{"!protocol=http"}, []string{"answer", "both", "kafka", "query", "tcp"}},

		// http-status
		{"a status code matches that code", []string{"http-status=503"}, []string{"503"}},
		{"a one-digit prefix matches every code it begins", []string{"http-status=5+"}, []string{"503", "5030"}},
		{"a two-digit prefix", []string{"http-status=50+"}, []string{"503", "5030"}},
		{"a two-digit prefix that begins no code", []string{"http-status=51+"}, nil},
		{"codes OR", []string{"http-status=200", "http-status=5+"}, []string{"200", "503", "5030"}},
		{"a code below 100 is written 099 and matches no prefix", []string{"http-status=1+"}, nil},
		{"requests have no status", []string{"http-status=2+", "http-status=1+", "http-status=3+", "http-status=4+", "http-status=5+"},
			[]string{"200", "503", "5030"}},
		{"not 5xx keeps every other flow", []string{"!http-status=5+"}, []string{"200", "99", "answer", "both", "get", "kafka", "query", "tcp"}},

		// http-method
		{"a method matches in any case", []string{"http-method=get"}, []string{"200", "get"}},
		{"methods OR", []string{"http-method=GET", "http-method=post"}, []string{"200", "503", "get"}},
		{"a non-ASCII letter folding onto an ASCII one is no match", []string{"http-method=KK"}, nil},
		{"method and status AND", []string{"http-method=GET", "http-status=2+"}, []string{"200"}},

		// http-path
		{"a path expression matches the unescaped path", []string{"http-path=^/v1/users/7$"}, []string{"200", "get"}},
		{"the query is not in the path", []string{"http-path=x=1"}, nil},
		{"a relative URL's path", []string{"http-path=^/v2/"}, []string{"503"}},
		{"an IPv6 literal host's path", []string{"http-path=^/v3$"}, []string{"5030"}},
		{"a URL ParseRequestURI refuses matches nothing", []string{"http-path=.*"}, []string{"200", "503", "5030", "get"}},

		// http-url
		{"a URL expression matches the URL as recorded", []string{"http-url=users%2F7\\?x=1$"}, []string{"200", "get"}},
		{"a URL expression is unanchored", []string{"http-url=example"}, []string{"200", "get"}},
		{"an anchored URL expression", []string{"http-url=^/"}, []string{"503"}},

		// http-header
		{"a header matches name and value exactly", []string{"http-header=server:envoy"}, []string{"503"}},
		{"a header's name is compared in its case", []string{"http-header=Server:envoy"}, nil},
		{"a header with an empty value", []string{"http-header=x-empty:"}, []string{"503"}},
		{"a pseudo-header", []string{"http-header=:authority:api.example.com"}, []string{"get"}},
		{"a header's value may hold colons", []string{"http-header=accept:*/*"}, []string{"get"}},

		// dns-query
		{"a DNS query expression matches queries and answers", []string{"dns-query=^www\\.example\\.com\\.$"}, []string{"answer", "query"}},
		{"a DNS query expression is unanchored", []string{"dns-query=example"}, []string{"answer", "both", "query"}},
		{"an HTTP record has no DNS query", []string{"dns-query=."}, []string{"answer", "both", "query"}},
		{"the record that breaks the one-of is no HTTP record", []string{"http-path=both"}, nil},

		// trace-id
		{"a trace ID matches the records of its request", []string{"trace-id=" + sampleTraceID}, []string{"200"}},
		{"another trace ID matches none", []string{"trace-id=00f067aa0ba902b700f067aa0ba902b7"}, nil},
		{"not a trace: every other flow", []string{"!trace-id=" + sampleTraceID}, []string{"503", "5030", "99", "answer", "both", "get", "kafka", "query", "tcp"}},
	}
	flows := l7SampleFlows()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.chips)
			if err != nil {
				t.Fatal(err)
			}
			got := matchedBy(f.Match, flows)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Parse(%q) matches %v, want %v", tt.chips, got, tt.want)
			}
		})
	}
}

func TestL7KindsRejectBadValues(t *testing.T) {
	tests := []struct{ chip, wantErr string }{
		{"http-status=600", "http-status must be a status code (404) or its first one or two digits and + (5+, 40+)"},
		{"http-status=5xx", "http-status must be"},
		{"http-status=5", "http-status must be"},
		{"http-status=+", "http-status must be"},
		{"http-status=500+", "http-status must be"},
		{"http-status=6+", "http-status must be"},
		{"http-status=05+", "http-status must be"},
		{"http-method=GET POST", `http-method must be an HTTP method (GET, POST, ...): " " is not allowed in one`},
		{"http-method=G\u00c9T", "http-method must be an HTTP method"},
		{"http-path=(", "http-path must be a regular expression: error parsing regexp"},
		{"http-url=a[", "http-url must be a regular expression"},
		{"dns-query=*.example.com", "dns-query must be a regular expression"},
		{"http-header=content-type", "http-header must be name:value"},
		{"http-header=:value", "http-header must be name:value"},
		{"protocol=grpc", "protocol must be tcp, udp, sctp, icmp, icmpv4 or icmpv6, or http, dns or kafka"},
		{"from:http-status=200", "http-status has no source or destination side"},
		{"trace-id=4BF92F3577B34DA6A3CE929D0E0E4736", "trace-id must be a W3C trace ID: 32 lower-case hex digits"},
		{"trace-id=00000000000000000000000000000000", "trace-id must be a W3C trace ID"},
		{"trace-id=4bf92f3577b34da6", "trace-id must be a W3C trace ID"},
	}
	for _, tt := range tests {
		t.Run(tt.chip, func(t *testing.T) {
			_, err := Parse([]string{tt.chip})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.chip, err, tt.wantErr)
			}
		})
	}
}

func TestL7ChipsAreCanonical(t *testing.T) {
	in := []string{"protocol=HTTP", "http-status=404", "http-status=5+", "http-method=get", "http-path=^/api/",
		"http-url=a=b", "http-header=:authority:x:y", "dns-query=(?i)EXAMPLE"}
	want := []string{"protocol=http", "http-status=404", "http-status=5+", "http-method=GET", "http-path=^/api/",
		"http-url=a=b", "http-header=:authority:x:y", "dns-query=(?i)EXAMPLE"}
	f := MustParse(in...)
	if got := f.Chips(); !slices.Equal(got, want) {
		t.Fatalf("Chips() = %q, want %q", got, want)
	}
	terms := f.Terms()
	byKind := map[string]TermValue{}
	for _, tm := range terms {
		byKind[tm.Kind] = tm.Values[len(tm.Values)-1]
	}
	if v := byKind["http-status"]; v.Number != 5 || !v.NumberPrefix {
		t.Errorf("http-status=5+ reads as %+v", v)
	}
	if v := byKind["http-header"]; v.Name != ":authority" || v.HeaderValue != "x:y" {
		t.Errorf("http-header=:authority:x:y reads as %+v", v)
	}
	if v := byKind["protocol"]; v.Name != "http" || v.Protocols != [2]uint8{} {
		t.Errorf("protocol=http reads as %+v", v)
	}
}

func TestL7MatchDoesNotAllocate(t *testing.T) {
	flows := l7SampleFlows()
	f := MustParse("protocol=http", "http-status=2+", "http-status=404", "http-method=GET", "http-path=^/v1/users/",
		"http-url=example", "!http-header=server:nginx")
	if !f.Match(flows["200"]) {
		t.Fatal("the filter should match the 200 response (an escaped path)")
	}
	dns := MustParse("protocol=dns", "dns-query=example\\.com\\.$")
	ipv6 := MustParse("http-path=^/v3$")
	trace := MustParse("trace-id=" + sampleTraceID)
	for name, run := range map[string]func(){
		"HTTP kinds on an escaped path": func() { f.Match(flows["200"]) },
		"HTTP kinds on a DNS flow":      func() { f.Match(flows["query"]) },
		"dns-query":                     func() { dns.Match(flows["answer"]) },
		"http-path of an IPv6 literal":  func() { ipv6.Match(flows["5030"]) },
		"trace-id":                      func() { trace.Match(flows["200"]) },
	} {
		if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
			t.Errorf("%s: Match allocated %.1f times per call, want 0", name, allocs)
		}
	}
}

func BenchmarkMatchL7(b *testing.B) {
	fl := l7SampleFlows()["200"]
	f := MustParse("protocol=http", "http-status=2+", "http-method=GET", "http-path=^/v1/users/")
	b.ReportAllocs()
	for b.Loop() {
		f.Match(fl)
	}
}
