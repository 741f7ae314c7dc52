package collector_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/collectortest"
	"github.com/periscope-dev/periscope/ui"
)

const webPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{fromEntities: [world]}]
`

// startGuardedNode runs a collector served as the binary serves it, with
// the web UI: its API, the policy API and the UI behind an access guard on
// TCP, and the same API on a Unix socket.
func startGuardedNode(t *testing.T, token string) *collectortest.Guarded {
	t.Helper()
	return collectortest.StartGuarded(t, token, func(c *collector.Collector) map[string]http.Handler {
		u, err := ui.New(ui.Options{Source: c.Store(), Followers: c.Followers()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(u.Close)
		return map[string]http.Handler{"GET /": u}
	})
}

type req struct {
	method, url, body string
	header            map[string]string
}

func (r req) do(t *testing.T, hc *http.Client) (int, string) {
	t.Helper()
	hr, err := http.NewRequest(r.method, r.url, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		if k == "Host" {
			hr.Host = v
			continue
		}
		hr.Header.Set(k, v)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The whole API, the policy API and the web UI included, answers as the
// access model says, over TCP and over the socket.
func TestTheAPIsDoorIsShut(t *testing.T) {
	n := startGuardedNode(t, "s3cret")
	tcp, sock := http.DefaultClient, n.SocketClient()
	yaml := map[string]string{"Content-Type": "application/yaml", "Authorization": "Bearer s3cret"}
	tests := []struct {
		name string
		hc   *http.Client
		r    req
		want int
	}{
		{"flows without the token", tcp, req{"GET", n.URL + "/api/v1/flows", "", nil}, 401},
		{"status without the token", tcp, req{"GET", n.URL + "/api/v1/status", "", nil}, 401},
		{"identities, policies with a wrong token", tcp, req{"GET", n.URL + "/api/v1/policies", "", map[string]string{"Authorization": "Bearer guess"}}, 401},
		{"status with the token", tcp, req{"GET", n.URL + "/api/v1/status", "", map[string]string{"Authorization": "Bearer s3cret"}}, 200},
		{"a policy applied without the token", tcp, req{"POST", n.URL + "/api/v1/policies", webPolicy, map[string]string{"Content-Type": "application/yaml"}}, 401},
		{"a text/plain policy with the token (a browser's simple request)", tcp, req{"POST", n.URL + "/api/v1/policies", webPolicy,
			map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer s3cret"}}, 415},
		{"a policy from a foreign origin with the token", tcp, req{"POST", n.URL + "/api/v1/policies", webPolicy,
			map[string]string{"Content-Type": "application/yaml", "Authorization": "Bearer s3cret", "Origin": "https://evil.example"}}, 403},
		{"a policy by a rebinding host with the token", tcp, req{"POST", n.URL + "/api/v1/policies", webPolicy,
			map[string]string{"Content-Type": "application/yaml", "Authorization": "Bearer s3cret", "Host": "evil.example:4244"}}, 403},
		{"a delete without the token", tcp, req{"DELETE", n.URL + "/api/v1/policies/default/web", "", nil}, 401},
		{"a policy applied with the token", tcp, req{"POST", n.URL + "/api/v1/policies", webPolicy, yaml}, 200},
		{"a policy applied over the socket, no token", sock, req{"POST", "http://localhost/api/v1/policies", strings.Replace(webPolicy, "web", "api", 1), nil}, 200},
		{"a delete over the socket", sock, req{"DELETE", "http://localhost/api/v1/policies/default/api", "", nil}, 200},
		{"flows over the socket", sock, req{"GET", "http://localhost/api/v1/flows?last=1", "", nil}, 200},
		// The web UI keeps working: its page and files without the token,
		// its API calls with the token it got in its URL.
		{"the UI's page", tcp, req{"GET", n.URL + "/?token=s3cret", "", nil}, 200},
		{"the UI's script", tcp, req{"GET", n.URL + "/app.js", "", nil}, 200},
		{"the UI's history query, as it sends it", tcp, req{"GET", n.URL + "/api/v1/flows?last=5", "", map[string]string{"Authorization": "Bearer s3cret"}}, 200},
		{"healthz", tcp, req{"GET", n.URL + "/healthz", "", nil}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := tt.r.do(t, tt.hc); code != tt.want {
				t.Errorf("%s %s: %d %q, want %d", tt.r.method, tt.r.url, code, body, tt.want)
			}
		})
	}

	ws := strings.Replace(n.URL, "http://", "ws://", 1) + "/api/v1/ws"
	for _, c := range []struct {
		name   string
		url    string
		origin string
		want   int
	}{
		{"the UI's WebSocket with its token", ws + "?token=s3cret", n.URL, http.StatusSwitchingProtocols},
		{"a WebSocket without the token", ws, n.URL, http.StatusUnauthorized},
		{"a WebSocket from a foreign page", ws + "?token=s3cret", "https://evil.example", http.StatusForbidden},
	} {
		conn, resp, err := websocket.DefaultDialer.Dial(c.url, http.Header{"Origin": {c.origin}})
		if conn != nil {
			conn.Close()
		}
		if resp == nil || resp.StatusCode != c.want {
			t.Errorf("%s: %v %v, want %d", c.name, resp, err, c.want)
		}
	}
}

// Without a token, reads stay open and no change is made over TCP.
func TestWithoutATokenChangesNeedTheSocket(t *testing.T) {
	n := startGuardedNode(t, "")
	if code, _ := (req{"GET", n.URL + "/api/v1/policies", "", nil}).do(t, http.DefaultClient); code != 200 {
		t.Errorf("a read without a token set: %d, want 200", code)
	}
	code, body := (req{"POST", n.URL + "/api/v1/policies", webPolicy, map[string]string{"Content-Type": "application/yaml"}}).do(t, http.DefaultClient)
	if code != http.StatusForbidden || !strings.Contains(body, "--api-socket") {
		t.Errorf("a change over TCP without a token set: %d %q, want 403 pointing at the socket", code, body)
	}
	if code, body := (req{"POST", "http://localhost/api/v1/policies", webPolicy, nil}).do(t, n.SocketClient()); code != 200 {
		t.Errorf("a change over the socket: %d %q, want 200", code, body)
	}
}
