package policy

import (
	"reflect"
	"strings"
	"testing"
)

const httpHead = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n"

// httpPolicy is a policy allowing app=client on TCP 80 with rules (YAML
// of the rules.http list, indented for the item).
func httpPolicy(rules string) string {
	return httpHead + "  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts:\n    - ports: [{port: '80', protocol: TCP}]\n      rules:\n        http:\n" + rules
}

func TestHTTPRulesParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules string
		want  []HTTPRule
	}{
		{"method and path", "        - {method: GET, path: /public/.*}\n",
			[]HTTPRule{{Method: "GET", Path: "/public/.*"}}},
		{"an empty rule matches every request (Cilium's L7 visibility)", "        - {}\n", []HTTPRule{{}}},
		{"host", "        - {host: 'api\\.example\\.com'}\n", []HTTPRule{{Host: `api\.example\.com`}}},
		{"headers: presence, 'Name: value' and 'Name value', names lower-cased", "        - headers: [X-Token, 'X-Env: prod', 'X-Team blue green']\n",
			[]HTTPRule{{Headers: []HeaderMatch{{Name: "x-token"}, {Name: "x-env", Value: "prod"}, {Name: "x-team", Value: "blue green"}}}}},
		{"headerMatches: value, or presence without one", "        - headerMatches: [{name: X-Key, value: s3cr3t}, {name: X-Trace}, {name: X-A, value: b, mismatch: ''}]\n",
			[]HTTPRule{{Headers: []HeaderMatch{{Name: "x-key", Value: "s3cr3t"}, {Name: "x-trace"}, {Name: "x-a", Value: "b"}}}}},
		{"two rules", "        - {method: GET}\n        - {method: POST, path: /submit}\n",
			[]HTTPRule{{Method: "GET"}, {Method: "POST", Path: "/submit"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pols, err := Parse("x.yaml", []byte(httpPolicy(tc.rules)))
			if err != nil {
				t.Fatal(err)
			}
			pr := pols[0].Rules[0].Ingress.Allow[0]
			rules, restricted := pr.L7For(6, 80)
			if !restricted || !reflect.DeepEqual(rules, tc.want) {
				t.Fatalf("rules %+v (restricted %v), want %+v", rules, restricted, tc.want)
			}
			if _, r := pr.L7For(6, 81); r {
				t.Fatal("rules apply to port 81")
			}
			if _, r := pr.L7For(17, 80); r {
				t.Fatal("rules apply to UDP")
			}
		})
	}
}

// TestHTTPRulesMergeAsCilium: a toPorts item without rules on the same
// port lets every request of the peer rule pass; rules: {} or http: []
// are no L7 rules.
func TestHTTPRulesMergeAsCilium(t *testing.T) {
	for _, tc := range []struct {
		name, toPorts string
		restricted    bool
	}{
		{"an L3/L4 item on the same port wildcards the rules",
			"    - ports: [{port: '80', protocol: TCP}]\n      rules: {http: [{method: GET}]}\n    - ports: [{port: '80', protocol: TCP}]\n", false},
		{"an item on another port does not", "    - ports: [{port: '80', protocol: TCP}]\n      rules: {http: [{method: GET}]}\n    - ports: [{port: '81'}]\n", true},
		{"empty rules are none", "    - ports: [{port: '80', protocol: TCP}]\n      rules: {}\n", false},
		{"an empty http list is none", "    - ports: [{port: '80', protocol: TCP}]\n      rules: {http: []}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := httpHead + "  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts:\n" + tc.toPorts
			pols, err := Parse("x.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if _, r := pols[0].Rules[0].Ingress.Allow[0].L7For(6, 80); r != tc.restricted {
				t.Fatalf("restricted %v, want %v", r, tc.restricted)
			}
		})
	}
}

func TestHTTPRulesRefused(t *testing.T) {
	item := func(ports, rules string) string {
		return httpHead + "  ingress:\n  - toPorts:\n    - ports: [" + ports + "]\n      rules: " + rules + "\n"
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"protocol ANY (Cilium requires TCP)", item("{port: '80'}", "{http: [{}]}"), `x.yaml:9:15: rules.http: every port needs protocol TCP`},
		{"UDP", item("{port: '80', protocol: UDP}", "{http: [{}]}"), `every port needs protocol TCP`},
		{"port 0", item("{port: '0', protocol: TCP}", "{http: [{}]}"), `every port needs a port number`},
		{"a port range", item("{port: '80', endPort: 90, protocol: TCP}", "{http: [{}]}"), `a port range (endPort) with L7 rules is not supported`},
		{"a bad path regexp", item("{port: '80', protocol: TCP}", "{http: [{path: '/a(b'}]}"), `x.yaml:9:29: rules.http path "/a(b": not a regular expression`},
		{"a regexp that would break out of its anchors", item("{port: '80', protocol: TCP}", "{http: [{method: 'GET)|(.*'}]}"), `rules.http method "GET)|(.*": not a regular expression`},
		{"a header value with spaces around it", item("{port: '80', protocol: TCP}", "{http: [{headers: ['X-A:  b']}]}"), `the value has spaces around it`},
		{"a pseudo-header", item("{port: '80', protocol: TCP}", "{http: [{headers: [':path /x']}]}"), `header name ":path"`},
		{"a mismatch action", item("{port: '80', protocol: TCP}", "{http: [{headerMatches: [{name: X-A, value: b, mismatch: LOG}]}]}"), `headerMatches mismatch "LOG" is not enforced`},
		{"a secret", item("{port: '80', protocol: TCP}", "{http: [{headerMatches: [{name: X-A, secret: {name: s}}]}]}"), `headerMatches item: "secret" is not enforced`},
		{"a headerMatch without name", item("{port: '80', protocol: TCP}", "{http: [{headerMatches: [{value: b}]}]}"), `headerMatches item: name is required`},
		{"an unknown field", item("{port: '80', protocol: TCP}", "{http: [{paths: /}]}"), `unknown field "paths" in rules.http item`},
		{"DNS rules on ingress", item("{port: '53', protocol: UDP}", "{dns: [{matchName: a.com}]}"), `DNS rules are not allowed on ingress`},
		{"l7proto", item("{port: '80', protocol: TCP}", "{l7proto: foo}"), `rules: "l7proto" is not enforced`},
		{"in a deny rule", httpHead + "  ingressDeny:\n  - toPorts:\n    - ports: [{port: '80', protocol: TCP}]\n      rules: {http: [{}]}\n",
			`ingressDeny rule: L7 rules cannot deny`},
		{"in a host policy", "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: h}\nspec:\n  nodeSelector: {}\n  ingress:\n  - toPorts:\n    - ports: [{port: '80', protocol: TCP}]\n      rules: {http: [{}]}\n",
			`x.yaml:5:3: spec: L7 rules (rules.http) do not apply to the host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestHTTPRuleMatches(t *testing.T) {
	rule := HTTPRule{Method: "GET|HEAD", Path: "/public/.*", Host: `shop\.example`,
		Headers: []HeaderMatch{{Name: "x-env", Value: "prod"}, {Name: "x-trace"}}}
	ok := HTTPRequest{Method: "GET", Path: "/public/a?b=1", Host: "shop.example",
		Headers: map[string]string{"x-env": "prod", "x-trace": ""}}
	if !rule.Matches(ok) {
		t.Fatal("the request the rule describes does not match")
	}
	for _, tc := range []struct {
		name string
		edit func(*HTTPRequest)
	}{
		{"a method the regexp matches only in part", func(r *HTTPRequest) { r.Method = "GETX" }},
		{"lower-case method", func(r *HTTPRequest) { r.Method = "get" }},
		{"a path outside", func(r *HTTPRequest) { r.Path = "/admin" }},
		{"a path that only ends like it", func(r *HTTPRequest) { r.Path = "/x/public/a" }},
		{"another host", func(r *HTTPRequest) { r.Host = "shop.example.evil" }},
		{"the host with a port", func(r *HTTPRequest) { r.Host = "shop.example:80" }},
		{"a header value repeated (joined)", func(r *HTTPRequest) { r.Headers = map[string]string{"x-env": "prod,dev", "x-trace": ""} }},
		{"a header missing", func(r *HTTPRequest) { r.Headers = map[string]string{"x-env": "prod"} }},
	} {
		req := ok
		tc.edit(&req)
		if rule.Matches(req) {
			t.Errorf("%s: %+v matches", tc.name, req)
		}
	}
}
