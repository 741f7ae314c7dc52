package openapi_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
)

// The binaries under test: built, run until the test ends, asked.

// apiToken is the servers' API token (--api-token), which every call of
// the test sends but those that check its absence.
const apiToken = "contract-test-token"

// get calls url with the API token.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// tokenEnv gives the servers the API token apiToken, a relay's peers too.
var tokenEnv = []string{"PERISCOPE_API_TOKEN=" + apiToken, "PERISCOPE_PEER_TOKEN=" + apiToken}

// startCollector runs `periscope collector` over the lab's pods with
// metrics, the web UI and ClickHouse until the test ends and returns its
// address once it answers.
func startCollector(t *testing.T, bin string, lab *netlab.Lab, dsn string) string {
	t.Helper()
	var cfg collector.Config
	for _, p := range lab.Pods() {
		cfg.Endpoints = append(cfg.Endpoints, periscopetest.PodEndpoint(p))
	}
	return periscopetest.StartCollector(t, bin, tokenEnv, "--config", periscopetest.EndpointsFile(t, cfg),
		"--hubble-listen", "", "--sock-events=false", "--metrics", "--clickhouse", dsn).Addr
}

// startServer runs `periscope <command> args...` with the API token until
// the test ends and returns its address once it answers.
func startServer(t *testing.T, bin, command string, args ...string) string {
	t.Helper()
	return periscopetest.Start(t, bin, command, tokenEnv, args...).Addr
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
