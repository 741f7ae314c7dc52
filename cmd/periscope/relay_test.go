package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/relay"
)

// cannedSource emits its flows once, then waits.
type cannedSource []api.Flow

func (s cannedSource) Name() string { return "canned" }

func (s cannedSource) Run(ctx context.Context, emit func(*api.Flow)) error {
	for i := range s {
		f := s[i]
		emit(&f)
	}
	<-ctx.Done()
	return ctx.Err()
}

func runInBackground(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestObserveWorksAgainstARelayUnchanged(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var peers []string
	for k := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var flows cannedSource
		for i := k; i < 6; i += 2 {
			flows = append(flows, api.Flow{
				Time: t0.Add(time.Duration(i) * time.Second), Verdict: api.VerdictForwarded, Type: api.FlowTypeL3L4,
				IP: api.IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.0.2"), Version: api.IPv4},
				L4: api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(40000 + i), DestinationPort: 80},
			})
		}
		c, err := collector.New(collector.Options{Topology: &collector.Topology{NodeName: fmt.Sprintf("node%d", k+1)},
			Sources: []collector.Source{flows}, Listener: ln})
		if err != nil {
			t.Fatal(err)
		}
		runInBackground(t, c.Run)
		<-c.Ready()
		for c.Store().Seen() < uint64(len(flows)) {
			time.Sleep(time.Millisecond)
		}
		peers = append(peers, c.Addr().String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Options{Peers: peers, Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, r.Run)
	<-r.Ready()

	var out bytes.Buffer
	opts := observeOptions{server: r.Addr().String(), output: "json", window: window{last: 4}}
	if err := runObserve(context.Background(), opts, []string{"to:port=80"}, &out, http.DefaultClient); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got []string
	for _, l := range lines {
		var f api.Flow
		if err := api.ParseJSON([]byte(l), &f); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, fmt.Sprintf("%s:%d", f.NodeName, f.L4.SourcePort))
	}
	want := "node1:40002 node2:40003 node1:40004 node2:40005"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
