package access

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echo answers 200 with the request's method, path and query, so a test
// sees what got through and how.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
})

type call struct {
	method, target string
	header         map[string]string
	body           string
}

func (c call) do(h http.Handler) (int, string) {
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, c.target, body)
	for k, v := range c.header {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, strings.TrimSpace(w.Body.String())
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

const (
	apiHost = "127.0.0.1:4244"
	yamlCT  = "application/yaml"
)

func TestTheAccessModel(t *testing.T) {
	withToken := New(Policy{Token: "s3cret", ListenHost: "127.0.0.1", AllowedHosts: []string{"node1.example"},
		AllowedOrigins: []string{"https://console.example"}, Public: StaticFiles}).TCP(echo)
	noToken := New(Policy{ListenHost: "0.0.0.0", Public: StaticFiles}).TCP(echo)
	bearer := map[string]string{"Authorization": "Bearer s3cret", "Host": apiHost}
	tests := []struct {
		name string
		h    http.Handler
		c    call
		want int
		body string // a part of the answer
	}{
		// The token.
		{"a read without the token is unauthorized", withToken, call{"GET", "/api/v1/flows", map[string]string{"Host": apiHost}, ""}, 401, "missing or wrong API token"},
		{"a read with a wrong token is unauthorized", withToken, call{"GET", "/api/v1/status", map[string]string{"Host": apiHost, "Authorization": "Bearer guess"}, ""}, 401, ""},
		{"a read with the bearer token passes", withToken, call{"GET", "/api/v1/status", bearer, ""}, 200, "GET /api/v1/status"},
		{"the token as Basic authentication's password passes", withToken, call{"GET", "/metrics", map[string]string{"Host": apiHost, "Authorization": basic("hubble", "s3cret")}, ""}, 200, ""},
		{"a GET with ?token= passes, the parameter taken off", withToken, call{"GET", "/api/v1/flows?token=s3cret&last=5", map[string]string{"Host": apiHost}, ""}, 200, "GET /api/v1/flows?last=5"},
		{"?token= does not authorize a change", withToken, call{"DELETE", "/api/v1/policies/default/x?token=s3cret", map[string]string{"Host": apiHost}, ""}, 401, ""},
		{"the web UI's files need no token", withToken, call{"GET", "/app.js", map[string]string{"Host": apiHost}, ""}, 200, ""},
		{"healthz needs no token", withToken, call{"GET", "/healthz", map[string]string{"Host": apiHost}, ""}, 200, ""},
		{"metrics need the token", withToken, call{"GET", "/metrics", map[string]string{"Host": apiHost}, ""}, 401, ""},
		{"a change with the token and a YAML body passes", withToken, call{"POST", "/api/v1/policies", map[string]string{"Host": apiHost, "Authorization": "Bearer s3cret", "Content-Type": yamlCT}, "kind: x"}, 200, "POST"},
		{"a change without the token is unauthorized", withToken, call{"POST", "/api/v1/policies", map[string]string{"Host": apiHost, "Content-Type": "application/json"}, "{}"}, 401, ""},
		{"a delete with the token passes", withToken, call{"DELETE", "/api/v1/policies/default/x", bearer, ""}, 200, "DELETE"},
		// No token set: reads are open, changes need the socket.
		{"without a token reads are open", noToken, call{"GET", "/api/v1/flows", map[string]string{"Host": "198.18.0.1:4244"}, ""}, 200, ""},
		{"without a token no change is made over TCP", noToken, call{"POST", "/api/v1/policies", map[string]string{"Host": apiHost, "Content-Type": yamlCT}, "x"}, 403, "--api-socket"},
		{"without a token a delete is refused", noToken, call{"DELETE", "/api/v1/policies/default/x", map[string]string{"Host": apiHost}, ""}, 403, ""},
		// Requests a browser may send cross-site.
		{"a text/plain POST is refused before its token is looked at", withToken, call{"POST", "/api/v1/policies", map[string]string{"Host": apiHost, "Authorization": "Bearer s3cret", "Content-Type": "text/plain"}, "kind: x"}, 415, "application/json"},
		{"a form POST is refused", noToken, call{"POST", "/api/v1/policies", map[string]string{"Host": apiHost, "Content-Type": "application/x-www-form-urlencoded"}, "a=b"}, 415, ""},
		{"a POST without a content type is refused", withToken, call{"POST", "/api/v1/policies", bearer, "kind: x"}, 415, ""},
		{"a foreign Origin is refused, token or not", withToken, call{"POST", "/api/v1/policies", map[string]string{"Host": apiHost, "Authorization": "Bearer s3cret", "Content-Type": yamlCT, "Origin": "https://evil.example"}, "x"}, 403, "origin"},
		{"a foreign Origin may not read either", noToken, call{"GET", "/api/v1/flows", map[string]string{"Host": apiHost, "Origin": "https://evil.example"}, ""}, 403, ""},
		{"a cross-site fetch without an Origin is refused", noToken, call{"GET", "/api/v1/status", map[string]string{"Host": apiHost, "Sec-Fetch-Site": "cross-site"}, ""}, 403, "cross-site"},
		{"the server's own origin passes", withToken, call{"GET", "/api/v1/ws?token=s3cret", map[string]string{"Host": apiHost, "Origin": "http://" + apiHost}, ""}, 200, ""},
		{"an allowed origin passes", withToken, call{"GET", "/api/v1/status", map[string]string{"Host": apiHost, "Authorization": "Bearer s3cret", "Origin": "https://console.example"}, ""}, 200, ""},
		{"a sandboxed page (origin null) is refused", noToken, call{"GET", "/api/v1/status", map[string]string{"Host": apiHost, "Origin": "null"}, ""}, 403, ""},
		{"a navigation the user typed passes", noToken, call{"GET", "/", map[string]string{"Host": apiHost, "Sec-Fetch-Site": "none"}, ""}, 200, ""},
		// DNS rebinding.
		{"a rebinding Host is refused", noToken, call{"GET", "/api/v1/flows", map[string]string{"Host": "attacker.example:4244"}, ""}, 403, "rebinding"},
		{"a rebinding Host is refused with the token too", withToken, call{"GET", "/api/v1/flows", map[string]string{"Host": "attacker.example", "Authorization": "Bearer s3cret"}, ""}, 403, ""},
		{"localhost passes", noToken, call{"GET", "/api/v1/flows", map[string]string{"Host": "localhost:4244"}, ""}, 200, ""},
		{"an IPv6 address passes", noToken, call{"GET", "/api/v1/flows", map[string]string{"Host": "[fd00::1]:4244"}, ""}, 200, ""},
		{"an allowed name passes", withToken, call{"GET", "/api/v1/flows", map[string]string{"Host": "NODE1.example:4244", "Authorization": "Bearer s3cret"}, ""}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := tt.c.do(tt.h)
			if code != tt.want || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s: %d %q, want %d with %q", tt.c.method, tt.c.target, code, body, tt.want, tt.body)
			}
		})
	}
}

func TestCheckAuthorization(t *testing.T) {
	for v, want := range map[string]bool{
		"Bearer s3cret": true, "bearer s3cret": true, "Bearer s3cre": false, "Bearer": false,
		basic("", "s3cret"): true, basic("u", "wrong"): false, "Basic !!!": false, "Token s3cret": false,
	} {
		if got := CheckAuthorization(v, "s3cret"); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
	if CheckAuthorization("Bearer ", "") {
		t.Error("an empty token authorized something")
	}
}
