package prom

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestPrometheusScrapesAndQueries runs a real Prometheus server that scrapes
// the handler every second, and asks it, in PromQL, for what was counted.
func TestPrometheusScrapesAndQueries(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		labtest.SkipOrFail(t, "prometheus not installed (apt-get install prometheus)")
	}
	if testing.Short() {
		t.Skip("starts a Prometheus server: skipped with -short only (CI runs without -short)")
	}
	m, srv := populated(t) // 2 connections, 120 + 60 bytes
	const more = 35
	for i := range more {
		m.Consume(conn(uint16(3000+i), 1, api.EventStart, cnt(1, 100, 0, 0)))
	}
	wantFlows, wantBytes := 2+more, 180+100*more

	dir := t.TempDir()
	target := strings.TrimPrefix(srv.URL, "http://")
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"+
		"scrape_configs:\n  - job_name: periscope\n    scrape_interval: 1s\n    static_configs:\n      - targets: [%q]\n", target)
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, prom,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait() // killed by the cancelled context
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})

	tests := []struct {
		query string
		want  int
	}{
		{"sum(periscope_flows_total)", wantFlows},
		{"sum(periscope_bytes_total)", wantBytes},
		{`periscope_lost_events_total{source="ringbuf"}`, 2},
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, tt := range tests {
		var got string
		for {
			got = query(addr, tt.query)
			if got == strconv.Itoa(tt.want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got != strconv.Itoa(tt.want) {
			t.Errorf("%s = %q, want %d", tt.query, got, tt.want)
		}
	}
}

// query returns the value of the first sample of an instant PromQL query, or
// a description of why there is none.
func query(addr, q string) string {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "error: " + err.Error()
	}
	if r.Status != "success" || len(r.Data.Result) == 0 {
		return "no result (status " + r.Status + ")"
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return s
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
