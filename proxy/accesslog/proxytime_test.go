package accesslog

import (
	"context"
	"sync"
	"testing"
	"time"

	alsdata "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/periscope-dev/periscope/api"
)

// TestProxyTime checks Envoy's own share of an exchange read from entries
// protobuf marshalled: the request's time in Envoy plus the response's,
// negative parts as 0, nothing without a timing.
func TestProxyTime(t *testing.T) {
	ms := func(f float64) *durationpb.Duration {
		return durationpb.New(time.Duration(f * float64(time.Millisecond)))
	}
	for _, tc := range []struct {
		name                       string
		lastRx, upTx, upRx, downTx *durationpb.Duration
		want                       time.Duration
		ok                         bool
	}{
		{"request and response", ms(0.1), ms(0.4), ms(3), ms(3.2), 500 * time.Microsecond, true},
		{"none of its own", ms(1), ms(1), ms(2), ms(2), 0, true},
		{"body streamed before it all arrived", ms(5), ms(1), ms(6), ms(6.25), 250 * time.Microsecond, true},
		{"a second and a nanosecond", ms(0), durationpb.New(time.Second + 1), ms(2000), ms(2000), time.Second + 1, true},
		{"a response of Envoy's own", ms(0.1), nil, nil, ms(0.3), 0, false},
		{"no last rx byte", nil, ms(1), ms(2), ms(3), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			en := entry(200, "via_upstream")
			c := en.CommonProperties
			c.TimeToLastRxByte, c.TimeToFirstUpstreamTxByte = tc.lastRx, tc.upTx
			c.TimeToFirstUpstreamRxByte, c.TimeToFirstDownstreamTxByte = tc.upRx, tc.downTx
			raw, err := proto.Marshal(en)
			if err != nil {
				t.Fatal(err)
			}
			var e httpEntry
			if err := e.decode(raw); err != nil {
				t.Fatal(err)
			}
			if d, ok := e.proxyTime(); d != tc.want || ok != tc.ok {
				t.Errorf("proxy time %v %v, want %v %v", d, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestRunReportsProxyTime checks that Run hands Options.ProxyTime the
// proxy's time of each forwarded entry, and nothing of the others.
func TestRunReportsProxyTime(t *testing.T) {
	forwarded := entry(200, "via_upstream")
	c := forwarded.CommonProperties
	c.TimeToLastRxByte, c.TimeToFirstUpstreamTxByte = durationpb.New(0), durationpb.New(300*time.Microsecond)
	c.TimeToFirstDownstreamTxByte = durationpb.New(3200 * time.Microsecond)
	own := entry(403, "rbac_access_denied_matched_policy[none]")
	msg, err := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*alsdata.HTTPAccessLogEntry{forwarded, own}}}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []time.Duration
	s := New(Options{ProxyTime: func(d time.Duration) { mu.Lock(); got = append(got, d); mu.Unlock() }})
	s.messages <- msg
	ctx, cancel := context.WithCancel(context.Background())
	records := make(chan struct{}, 8)
	done := make(chan error)
	go func() { done <- s.Run(ctx, func(*api.Flow) { records <- struct{}{} }) }()
	for range 4 { // a request and a response each
		select {
		case <-records:
		case <-time.After(10 * time.Second):
			t.Fatal("Run emitted fewer than 4 records")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != 500*time.Microsecond {
		t.Errorf("proxy times %v, want [500µs]", got)
	}
}
