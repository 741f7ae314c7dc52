package relay

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api/flowquery"
)

func TestSourceParameterReachesThePeers(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		wantPeer  string // the peers' source parameter
		wantError string
	}{
		{name: "the ring is the default and is not forwarded", query: "last=5", wantPeer: ""},
		{name: "ring may be named", query: "last=5&source=ring", wantPeer: ""},
		{name: "clickhouse history is forwarded to every peer", query: "since=1h&source=clickhouse", wantPeer: "clickhouse"},
		{name: "clickhouse cannot be followed", query: "follow=1&source=clickhouse", wantError: "cannot be combined with source=clickhouse"},
		{name: "an unknown source is refused", query: "source=s3", wantError: "is not ring or clickhouse"},
	}
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			p, err := flowquery.Parse(v, time.Now())
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rd := r.Ring()
			if p.Source == flowquery.SourceClickHouse {
				rd = r.History()
			}
			req := newRequest(p.Query, p.Follow, rd.source, true)
			if got := req.peerQuery().Get("source"); got != tt.wantPeer {
				t.Fatalf("peer source = %q, want %q", got, tt.wantPeer)
			}
		})
	}
}
