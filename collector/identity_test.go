package collector

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// stateOf reads an identity state file: last_used by labels.
func stateOf(t *testing.T, path string) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Identities []struct {
			Labels   []string `json:"labels"`
			LastUsed int64    `json:"last_used"`
		} `json:"identities"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range st.Identities {
		out[identity.NewLabels(e.Labels...).String()] = e.LastUsed
	}
	return out
}

func TestTheCollectorReleasesIdentitiesNoEndpointUsedWithinTheGrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities.json")
	old := time.Now().Add(-2 * time.Hour).Unix()
	state := `{"version": 1, "identities": [
		{"id": 300, "labels": ["k8s:app=gone"], "last_used": ` + jsonInt(old) + `},
		{"id": 301, "labels": ["k8s:app=legacy"]}
	]}`
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	ids, err := identity.NewAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Unix()
	c, err := New(Options{Topology: testTopology(), Sources: []Source{&apitest.Source{}}, Listener: ln,
		Identities: ids, IdentityGrace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got := stateOf(t, path)
	if _, ok := got["k8s:app=gone"]; ok {
		t.Error("an identity last used 2h ago is still in the state, grace 1h")
	}
	if _, ok := got["k8s:app=legacy"]; !ok {
		t.Error("an identity without last_used (an older state file) was released at once; its grace starts at load")
	}
	for _, e := range c.Registry().endpoints {
		if used := got[identity.NewLabels(e.endpoint.Labels...).String()]; used < start {
			t.Errorf("endpoint %s: last_used %d, want ≥ %d (in use at start)", e.endpoint.PodName, used, start)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Registry().endpoints {
		if _, ok := stateOf(t, path)[identity.NewLabels(e.endpoint.Labels...).String()]; !ok {
			t.Errorf("endpoint %s's identity released at the end of Run", e.endpoint.PodName)
		}
	}
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
