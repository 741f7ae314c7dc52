package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/policy/ciliumexample"
)

// Cilium's own L7 example policies (examples/policies of the cilium
// module go.mod requires, read from the module cache) are accepted and mean what Cilium's documentation
// (Documentation/security/policy/layer7.rst, layer3.rst) says they mean.
// Each case quotes the behaviour it holds the file to.

// exchange is one request or connection a conformance case judges: an
// HTTP request (method set), a DNS query (query set), or an L3/L4
// connection (neither).
type exchange struct {
	name  string
	local Endpoint
	peer  Peer
	dir   Direction
	proto uint8
	port  uint16
	icmp  uint8 // the ICMP type, for proto 1 and 58
	req   HTTPRequest
	query string
	want  bool // passes
}

func (x exchange) passes(pols []*Policy) bool {
	switch {
	case x.req.Method != "":
		return EvaluateHTTP(pols, x.local, x.peer, x.dir, x.port, x.req).Verdict.Forwarded()
	case x.query != "":
		d := EvaluateDNS(pols, x.local, x.peer, x.proto, x.port, x.query)
		return d.Redirected && d.Allowed
	}
	return Evaluate(pols, x.local, x.peer, x.dir, x.proto, x.port, x.icmp).Verdict.Forwarded()
}

func TestCiliumExamplePoliciesMeanWhatCiliumsDocsSay(t *testing.T) {
	const udp, tcp = 17, 6
	ns := func(n string) string { return "k8s:" + NamespaceLabel + "=" + n }
	peer := func(id uint32, labels ...string) Peer {
		return Peer{Identity: id, Labels: append(labels, ns("default"))}
	}
	world := func(ip string, names ...string) Peer {
		return Peer{Identity: 2, Labels: []string{"reserved:world"}, IP: netip.MustParseAddr(ip), Names: names}
	}
	get := func(path string) HTTPRequest { return HTTPRequest{Method: "GET", Path: path} }

	service := Endpoint{Namespace: "default", Labels: []string{"k8s:app=service"}}
	prod, dev := peer(1001, "k8s:env=prod"), peer(1002, "k8s:env=dev")
	myService := Endpoint{Namespace: "default", Labels: []string{"k8s:app=myService"}}
	prodEndpoint := Endpoint{Namespace: "default", Labels: []string{"k8s:env=prod"}}
	webServer := Endpoint{Namespace: "default", Labels: []string{"k8s:id=web-server"}}
	alliance := Endpoint{Namespace: "default", Labels: []string{"k8s:org=alliance"}}
	testApp := Endpoint{Namespace: "default", Labels: []string{"k8s:app=test-app"}}
	kubeDNS := Peer{Identity: 1100, Labels: []string{"k8s:k8s-app=kube-dns", ns("kube-system")}}
	put2 := func(headers map[string]string) HTTPRequest {
		return HTTPRequest{Method: "PUT", Path: "/path2", Headers: headers}
	}
	external := func(method, host string) HTTPRequest { return HTTPRequest{Method: method, Path: "/", Host: host} }

	for _, tc := range []struct {
		file  string
		cases []exchange
	}{
		{"l7/http/simple/l7.yaml", []exchange{ // layer7.rst "Allow GET /public"
			{name: "GET /public from env=prod passes", local: service, peer: prod, dir: Ingress, port: 80, req: get("/public"), want: true},
			{name: "the path is matched whole: GET /public/x is rejected", local: service, peer: prod, dir: Ingress, port: 80, req: get("/public/x")},
			{name: "a query string is part of the path: GET /public?a=1 is rejected", local: service, peer: prod, dir: Ingress, port: 80, req: get("/public?a=1")},
			{name: "another method is rejected", local: service, peer: prod, dir: Ingress, port: 80, req: HTTPRequest{Method: "POST", Path: "/public"}},
			{name: "the method is matched in its case: get is rejected", local: service, peer: prod, dir: Ingress, port: 80, req: HTTPRequest{Method: "get", Path: "/public"}},
			{name: "requests on other ports are dropped", local: service, peer: prod, dir: Ingress, proto: tcp, port: 8080},
			{name: "env=dev is dropped at L3", local: service, peer: dev, dir: Ingress, port: 80, req: get("/public")},
		}},
		{"l7/http/http.yaml", []exchange{ // layer7.rst "All GET /path1 and PUT /path2 when header set"
			{name: "GET /path1 passes", local: myService, peer: dev, dir: Ingress, port: 80, req: get("/path1"), want: true},
			{name: "a $ in the rule changes nothing: GET /path1x is rejected", local: myService, peer: dev, dir: Ingress, port: 80, req: get("/path1x")},
			{name: "a prefix does not match: GET /x/path1 is rejected", local: myService, peer: dev, dir: Ingress, port: 80, req: get("/x/path1")},
			{name: "PUT /path2 with X-My-Header: true passes", local: myService, peer: dev, dir: Ingress, port: 80, req: put2(map[string]string{"x-my-header": "true"}), want: true},
			{name: "PUT /path2 without the header is rejected", local: myService, peer: dev, dir: Ingress, port: 80, req: put2(nil)},
			{name: "PUT /path2 with another value is rejected", local: myService, peer: dev, dir: Ingress, port: 80, req: put2(map[string]string{"x-my-header": "false"})},
			{name: "GET /path2 is rejected: the rules are ORed, not mixed", local: myService, peer: dev, dir: Ingress, port: 80, req: get("/path2")},
			{name: "only port 80 is open", local: myService, peer: dev, dir: Ingress, proto: tcp, port: 81},
		}},
		{"l7/http/l7_multi.yaml", []exchange{
			{name: "ingress: GET /public from env=prod passes", local: service, peer: prod, dir: Ingress, port: 80, req: get("/public"), want: true},
			{name: "ingress: GET /private is rejected", local: service, peer: prod, dir: Ingress, port: 80, req: get("/private")},
			{name: "egress: POST to external-service.org passes", local: prodEndpoint, peer: world("198.18.0.9"), dir: Egress, port: 80, req: external("POST", "external-service.org"), want: true},
			{name: "egress: the host is anchored: POST to external-service.org.evil is rejected", local: prodEndpoint, peer: world("198.18.0.9"), dir: Egress, port: 80, req: external("POST", "external-service.org.evil")},
			{name: "egress: GET to external-service.org is rejected", local: prodEndpoint, peer: world("198.18.0.9"), dir: Egress, port: 80, req: external("GET", "external-service.org")},
		}},
		{"getting-started/l7-policy.yaml", []exchange{
			{name: "GET /public from id=goodclient passes", local: webServer, peer: peer(1003, "k8s:id=goodclient"), dir: Ingress, port: 8181, req: get("/public"), want: true},
			{name: "GET /admin is rejected", local: webServer, peer: peer(1003, "k8s:id=goodclient"), dir: Ingress, port: 8181, req: get("/admin")},
		}},
		{"l7/dns/dns.yaml", []exchange{ // layer7.rst "DNS Policy and IP Discovery"
			{name: "a query for cilium.io passes", local: alliance, peer: kubeDNS, proto: udp, port: 53, query: "cilium.io.", want: true},
			{name: "names match in any case and without the final dot", local: alliance, peer: kubeDNS, proto: tcp, port: 53, query: "CILIUM.io", want: true},
			{name: "*.cilium.io: a subdomain passes", local: alliance, peer: kubeDNS, proto: udp, port: 53, query: "anothersub.cilium.io.", want: true},
			{name: "*.cilium.io: one level only, a.b.cilium.io is refused", local: alliance, peer: kubeDNS, proto: udp, port: 53, query: "a.b.cilium.io."},
			{name: "*.api.cilium.io: x.api.cilium.io passes", local: alliance, peer: kubeDNS, proto: udp, port: 53, query: "x.api.cilium.io.", want: true},
			{name: "another name is refused", local: alliance, peer: kubeDNS, proto: udp, port: 53, query: "example.com."},
			{name: "toFQDNs: sub.cilium.io's address on port 80 is allowed", local: alliance, peer: world("198.18.1.1", "sub.cilium.io"), dir: Egress, proto: tcp, port: 80, want: true},
			{name: "toFQDNs: only port 80", local: alliance, peer: world("198.18.1.1", "sub.cilium.io"), dir: Egress, proto: tcp, port: 443},
			{name: "toFQDNs: anothersub.cilium.io resolves but its address is not allowed", local: alliance, peer: world("198.18.1.2", "anothersub.cilium.io"), dir: Egress, proto: tcp, port: 80},
			{name: "toFQDNs: special*service matches special-region1-service", local: alliance, peer: world("198.18.1.3", "special-region1-service.api.cilium.io"), dir: Egress, proto: tcp, port: 80, want: true},
			{name: "toFQDNs: but not region1-service", local: alliance, peer: world("198.18.1.4", "region1-service.api.cilium.io"), dir: Egress, proto: tcp, port: 80},
		}},
		{"l7/dns/dns-visibility.yaml", []exchange{ // layer7.rst "Obtaining DNS Data for use by toFQDNs"
			{name: "matchPattern * lets every query pass", local: alliance, peer: kubeDNS, proto: udp, port: 53, query: "anything.example.", want: true},
			{name: "toFQDNs: cilium.io is allowed", local: alliance, peer: world("198.18.2.1", "cilium.io"), dir: Egress, proto: tcp, port: 443, want: true},
			{name: "toFQDNs: *.sub.cilium.io is allowed", local: alliance, peer: world("198.18.2.2", "x.sub.cilium.io"), dir: Egress, proto: tcp, port: 443, want: true},
			{name: "toFQDNs: *.sub.cilium.io is one level deep", local: alliance, peer: world("198.18.2.3", "y.x.sub.cilium.io"), dir: Egress, proto: tcp, port: 443},
			{name: "toFQDNs: an address no allowed name resolved to is denied", local: alliance, peer: world("198.18.2.4", "example.com"), dir: Egress, proto: tcp, port: 443},
		}},
		{"l7/dns/dns-upgrade.yaml", []exchange{
			{name: "matchPattern * lets every query pass", local: alliance, peer: kubeDNS, proto: tcp, port: 53, query: "example.com.", want: true},
			{name: "toFQDNs: sub.cilium.io is allowed", local: alliance, peer: world("198.18.3.1", "sub.cilium.io"), dir: Egress, proto: tcp, port: 443, want: true},
			{name: "toFQDNs: x.sub.cilium.io is not", local: alliance, peer: world("198.18.3.2", "x.sub.cilium.io"), dir: Egress, proto: tcp, port: 443},
		}},
		{"l3/fqdn/fqdn.yaml", []exchange{ // layer3.rst "DNS based"
			{name: "DNS to kube-dns passes", local: testApp, peer: kubeDNS, proto: udp, port: 53, query: "my-remote-service.com.", want: true},
			{name: "DNS to another server is dropped", local: testApp, peer: peer(1004, "k8s:app=other"), dir: Egress, proto: udp, port: 53},
			{name: "my-remote-service.com's address is allowed on any port", local: testApp, peer: world("198.18.4.1", "my-remote-service.com"), dir: Egress, proto: tcp, port: 8443, want: true},
			{name: "another name's address is denied", local: testApp, peer: world("198.18.4.2", "other.com"), dir: Egress, proto: tcp, port: 443},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			pols, err := ParseFile(ciliumexample.Path(t, tc.file))
			if err != nil {
				t.Fatalf("Cilium's example is refused: %v", err)
			}
			for _, x := range tc.cases {
				if x.req.Method != "" {
					x.proto = tcp
				}
				if got := x.passes(pols); got != x.want {
					t.Errorf("%s: passes %v, want %v", x.name, got, x.want)
				}
			}
		})
	}
}

// The parts of Cilium's policy language its documentation defines beyond
// the examples: "**." (layer3.rst: "**.cilium.io" matches app.cilium.io and
// test.app.cilium.io but not cilium.io), a rules.http key spelt otherwise
// than Cilium's CRD spells it (refused, never read as no rule), and a
// headerMatches mismatch action (refused: Periscope does not perform it).
func TestCiliumDocumentedSemanticsBeyondTheExamples(t *testing.T) {
	const head = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {matchLabels: {app: a}}\n"
	a := Endpoint{Namespace: "default", Labels: []string{"k8s:app=a"}}
	pols, err := Parse("cascade.yaml", []byte(head+"  egress:\n  - toFQDNs: [{matchPattern: '**.cilium.io'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"app.cilium.io": true, "test.app.cilium.io": true, "cilium.io": false, "app.cilium.io.evil": false} {
		p := Peer{Identity: 2, Labels: []string{"reserved:world"}, IP: netip.MustParseAddr("198.18.5.1"), Names: []string{name}}
		if got := Evaluate(pols, a, p, Egress, 6, 443, 0).Verdict.Forwarded(); got != want {
			t.Errorf("**.cilium.io and %s: allowed %v, want %v", name, got, want)
		}
	}
	// headers: "Name" requires presence, "Name value" the exact value (the
	// rest of the line after the first space); headerMatches without a
	// mismatch action: the value, or presence when it has none.
	pols, err = Parse("headers.yaml", []byte(head+"  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: ["+
		"{path: /a, headers: ['X-Token']}, {path: /b, headers: ['X-Key: a b']}, "+
		"{path: /c, headerMatches: [{name: X-Env, value: prod}]}, {path: /d, headerMatches: [{name: X-Env}]}]}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	peer := Peer{Identity: 1000, Labels: []string{"k8s:app=b", "k8s:" + NamespaceLabel + "=default"}}
	for _, tc := range []struct {
		path    string
		headers map[string]string
		want    bool
	}{
		{"/a", map[string]string{"x-token": "anything"}, true},
		{"/a", map[string]string{"x-token": ""}, true},
		{"/a", nil, false},
		{"/b", map[string]string{"x-key": "a b"}, true},
		{"/b", map[string]string{"x-key": "a"}, false},
		{"/c", map[string]string{"x-env": "prod"}, true},
		{"/c", map[string]string{"x-env": "dev"}, false},
		{"/d", map[string]string{"x-env": "dev"}, true},
		{"/d", nil, false},
	} {
		d := EvaluateHTTP(pols, a, peer, Ingress, 80, HTTPRequest{Method: "GET", Path: tc.path, Headers: tc.headers})
		if got := d.Verdict.Forwarded(); got != tc.want {
			t.Errorf("GET %s with headers %v: passes %v, want %v", tc.path, tc.headers, got, tc.want)
		}
	}

	for _, tc := range []struct{ name, spec, wantErr string }{
		{"an HTTP key in capitals", "  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {HTTP: [{method: GET}]}}]\n", "HTTP"},
		{"a mismatch action", "  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{headerMatches: [{name: X-A, value: b, mismatch: LOG}]}]}}]\n", "mismatch"},
		{"a header value from a secret", "  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{headerMatches: [{name: X-A, secret: {name: s}}]}]}}]\n", "secret"},
		{"DNS rules on ingress", "  ingress:\n  - toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchName: a.com}]}}]\n", "rules.dns"},
		{"DNS rules on a port range", "  egress:\n  - toPorts: [{ports: [{port: '53', endPort: 54, protocol: UDP}], rules: {dns: [{matchName: a.com}]}}]\n", "port ranges"},
		{"a matchPattern with a character DNS names lack", "  egress:\n  - toFQDNs: [{matchPattern: 'a/b.com'}]\n", "matchPattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(head+tc.spec))
			if err == nil || !containsFold(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
