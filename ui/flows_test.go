package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// A UI with nothing in front of it answers GET /api/v1/flows itself, from
// its sources, behind its token.
func TestStandaloneUIAnswersFlowsFromItsSources(t *testing.T) {
	src := newChanSource()
	src.stored = []api.Flow{
		{Verdict: api.VerdictForwarded, L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 1}},
		{Verdict: api.VerdictDropped, L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 2}},
	}
	u, err := New(Options{Source: src, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	get := func(query string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/v1/flows" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("?all"); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	code, body := get("?token=s3cret&all&filter=verdict%3DDROPPED")
	if code != http.StatusOK || strings.Count(body, "\n") != 1 || !strings.Contains(body, `"source_port":2`) {
		t.Errorf("with the token: %d %q, want the dropped flow", code, body)
	}
	if code, body := get("?token=s3cret&source=clickhouse"); code != http.StatusBadRequest || !strings.Contains(body, flowquery.NoHistory) {
		t.Errorf("history without one: %d %q, want 400 %q", code, body, flowquery.NoHistory)
	}
}
