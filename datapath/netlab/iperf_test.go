package netlab

import (
	"os/exec"
	"testing"
	"time"
)

func TestParseIperf(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr bool
	}{
		{"a finished test reports the receiver's rate", `{"end":{"sum_received":{"bits_per_second":1.5e9}}}`, 1.5e9, false},
		{"an iperf3 error is an error", `{"error":"unable to connect"}`, 0, true},
		{"a test without a rate is an error", `{"end":{}}`, 0, true},
		{"garbage is an error", `not json`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperf([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseIperf = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestThroughputMeasuresTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs iperf3 for a second: skipped with -short only (CI runs without -short)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		skipOrFail(t, "iperf3 is not installed (make deps)")
	}
	_, pods := newTestLab(t, "client", "server")
	bps, err := Throughput(t.Context(), pods[0], pods[1], IperfOptions{Duration: time.Second})
	if err != nil {
		t.Fatalf("Throughput: %v", err)
	}
	if bps < 1e6 {
		t.Errorf("Throughput = %.0f bit/s, want at least 1 Mbit/s over a veth pair", bps)
	}
	t.Logf("TCP throughput: %.2f Gbit/s", bps/1e9)
}

// BenchmarkThroughput is the baseline TCP throughput between two pods over
// the lab's bridge, with no datapath attached.
func BenchmarkThroughput(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		skipOrFail(b, "iperf3 is not installed (make deps)")
	}
	_, pods := newTestLab(b, "client", "server")
	var total float64
	n := 0
	for b.Loop() {
		bps, err := Throughput(b.Context(), pods[0], pods[1], IperfOptions{Duration: time.Second})
		if err != nil {
			b.Fatalf("Throughput: %v", err)
		}
		total += bps
		n++
	}
	b.ReportMetric(total/float64(n)/1e9, "Gbit/s")
}
