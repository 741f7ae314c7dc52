package prom

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// populated returns metrics with a series in every family.
func populated(t testing.TB) (*metrics.Metrics, *httptest.Server) {
	t.Helper()
	m, reg := newTestMetrics(t, metrics.Options{})
	m.Consume(conn(1000, 1, api.EventStart, cnt(1, 60, 1, 60)))
	f := conn(2000, 1, api.EventStart, cnt(1, 60, 0, 0))
	f.Verdict, f.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
	m.Consume(f)
	m.Consume(httpResponse("GET", 200, 3*time.Millisecond, api.TrafficDirectionIngress))
	m.Consume(dnsRecord(false, api.VerdictDropped, "A", 0, nil))
	m.Consume(dnsRecord(true, api.VerdictForwarded, "A", 0, []string{"198.18.0.9"}, "A"))
	m.AddLostEventsSource("ringbuf", func() uint64 { return 2 })
	m.AddQueues(fakeQueue{"clickhouse", sink.Stats{Queued: 1}})
	srv := httptest.NewServer(Handler(reg, quietLogger()))
	t.Cleanup(srv.Close)
	return m, srv
}

func scrape(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d, err %v", resp.StatusCode, err)
	}
	return body
}

func TestScrapePassesPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		labtest.SkipOrFail(t, "promtool not installed (apt-get install prometheus)")
	}
	_, srv := populated(t)
	body := scrape(t, srv.URL)
	for _, family := range []string{
		"periscope_flows_total", "periscope_drops_total", "periscope_policy_verdicts_total",
		"periscope_bytes_total", "periscope_packets_total", "periscope_lost_events_total",
		"periscope_sink_queue_length", "periscope_sink_dropped_total",
		"periscope_http_requests_total", "periscope_http_request_duration_seconds",
		"periscope_dns_queries_total", "periscope_dns_responses_total", "periscope_dns_response_types_total",
	} {
		if !bytes.Contains(body, []byte("# TYPE "+family+" ")) {
			t.Errorf("scrape has no family %s", family)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out, body)
	}
}
