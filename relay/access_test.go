package relay

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/collector"
)

// Collectors that want a token get the relay's --peer-token on every call
// (status, flows, namespaces, agent events); the relay's own API is
// guarded as a collector's is.
func TestARelayCallsGuardedPeersWithTheirToken(t *testing.T) {
	guarded := func(o *collector.Options) {
		o.Access = access.New(access.Policy{Token: "p33r", ListenHost: "127.0.0.1", Public: access.StaticFiles})
	}
	n := startNode(t, "node1", "", nil, nil, guarded)

	without, _ := startRelay(t, Options{Peers: []string{n.addr}})
	waitFor(t, "the peer refused without its token", func() bool {
		st := nodeStatus(without, n.addr)
		return strings.Contains(st.LastError, "401") && !st.Connected
	})

	r, base := startRelay(t, Options{Peers: []string{n.addr}, PeerToken: "p33r",
		Access: access.New(access.Policy{Token: "r3lay", ListenHost: "127.0.0.1", Public: access.StaticFiles})})
	waitFor(t, "the peer connected with its token", func() bool { return r.Status().NumConnectedNodes == 1 })
	for _, path := range []string{"/api/v1/flows?all", "/api/v1/namespaces", "/api/v1/agent-events?all"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the relay's token: %s, want 401", path, resp.Status)
		}
		req.Header.Set("Authorization", "Bearer r3lay")
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Periscope-Partial") != "" {
			t.Errorf("%s with the relay's token: %s (partial %q) %q, want a whole answer", path, resp.Status, resp.Header.Get("X-Periscope-Partial"), body)
		}
		if path == "/api/v1/agent-events?all" && !strings.Contains(string(body), "AGENT_STARTED") {
			t.Errorf("the peer's agent events did not come through: %q", body)
		}
	}
}
