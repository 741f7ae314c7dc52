package relay

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
)

// countLines reads an NDJSON answer and counts its lines; with want > 0 it
// stops after want lines (a follow).
func countLines(b *testing.B, ctx context.Context, url string, want int, started chan<- struct{}) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	defer resp.Body.Close()
	if started != nil {
		close(started)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if n == want {
			break
		}
	}
	return n
}

// BenchmarkRelayHistory reads every stored flow of three peers through the
// relay (merged by time) and, in the same run, of one peer directly.
//
//	go test -run '^$' -bench RelayHistory -benchtime 20x ./relay/
func BenchmarkRelayHistory(b *testing.B) {
	const perNode = 20000
	t0 := time.Now().Add(-time.Hour)
	nodes := make([]*testNode, 3)
	for k := range nodes {
		canned := make([]api.Flow, perNode)
		for i := range canned {
			canned[i] = testFlow(i, t0.Add(time.Duration(i*3+k)*time.Millisecond))
		}
		nodes[k] = startNode(b, fmt.Sprintf("node%d", k+1), "", canned, nil,
			func(o *collector.Options) { o.RingSize = perNode })
	}
	_, base := startRelay(b, Options{Peers: []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}})
	ctx := context.Background()
	var rawN, relayN int
	var rawT, relayT time.Duration
	for b.Loop() {
		start := time.Now()
		rawN += countLines(b, ctx, "http://"+nodes[0].addr+"/api/v1/flows?all=1", 0, nil)
		rawT += time.Since(start)
		start = time.Now()
		relayN += countLines(b, ctx, base+"/api/v1/flows?all=1", 0, nil)
		relayT += time.Since(start)
	}
	if relayN != b.N*3*perNode || rawN != b.N*perNode {
		b.Fatalf("read %d flows through the relay and %d raw", relayN, rawN)
	}
	reportRatio(b, rawN, rawT, relayN, relayT)
}

// BenchmarkRelayFollow streams flows emitted live on three peers through
// the relay's merge window and, in the same run, from one peer directly.
//
//	go test -run '^$' -bench RelayFollow -benchtime 10x ./relay/
func BenchmarkRelayFollow(b *testing.B) {
	const perNode = 20000
	big := func(o *collector.Options) { o.RingSize = 4 * perNode }
	nodes := make([]*testNode, 3)
	for k := range nodes {
		nodes[k] = startNode(b, fmt.Sprintf("node%d", k+1), "", nil, nil, big)
	}
	_, base := startRelay(b, Options{Peers: []string{nodes[0].addr, nodes[1].addr, nodes[2].addr},
		MergeWindow: 100 * time.Millisecond, ConnectWait: 5 * time.Second})
	var rawN, relayN int
	var rawT, relayT time.Duration
	run := func(url string, targets []*testNode) (int, time.Duration) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		want := perNode * len(targets)
		for _, n := range nodes { // the previous run's follows have ended
			for n.c.Store().Followers() > 0 {
				time.Sleep(time.Millisecond)
			}
		}
		got := make(chan int, 1)
		go func() { got <- countLines(b, ctx, url, want, nil) }()
		for _, n := range targets { // wait until every peer streams to us
			for n.c.Store().Followers() == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, n := range targets {
			wg.Go(func() {
				now := time.Now()
				for i := range perNode {
					n.src.Live <- testFlow(i, now.Add(time.Duration(i)*time.Microsecond))
				}
			})
		}
		wg.Wait()
		n := <-got
		return n, time.Since(start)
	}
	for b.Loop() {
		n, d := run("http://"+nodes[0].addr+"/api/v1/flows?follow=1", nodes[:1])
		rawN, rawT = rawN+n, rawT+d
		n, d = run(base+"/api/v1/flows?follow=1", nodes)
		relayN, relayT = relayN+n, relayT+d
	}
	if relayN != b.N*3*perNode || rawN != b.N*perNode {
		b.Fatalf("read %d flows through the relay and %d raw (followers skipped some?)", relayN, rawN)
	}
	reportRatio(b, rawN, rawT, relayN, relayT)
}

func reportRatio(b *testing.B, rawN int, rawT time.Duration, relayN int, relayT time.Duration) {
	raw := float64(rawN) / rawT.Seconds()
	merged := float64(relayN) / relayT.Seconds()
	b.ReportMetric(raw, "raw-flows/s")
	b.ReportMetric(merged, "relay-flows/s")
	b.ReportMetric(merged/raw, "relay/raw")
	b.ReportMetric(0, "ns/op")
}
