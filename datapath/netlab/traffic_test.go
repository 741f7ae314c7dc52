package netlab

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestRunTrafficExchangesSucceed(t *testing.T) {
	_, pods := newTestLab(t, "front", "back")
	front, back := pods[0], pods[1]
	var traffic []Traffic
	for _, v6 := range []bool{false, true} {
		traffic = append(traffic,
			Traffic{Kind: Requests, From: front, To: back, Port: 8080, IPv6: v6, Every: 100 * time.Millisecond},
			Traffic{Kind: Stream, From: front, To: back, Port: 5432, IPv6: v6, Every: 100 * time.Millisecond},
			Traffic{Kind: Datagrams, From: front, To: back, Port: 53, IPv6: v6, Every: 100 * time.Millisecond},
			Traffic{Kind: Echo, From: back, To: front, IPv6: v6, Every: 100 * time.Millisecond},
			Traffic{Kind: HTTP, From: front, To: back, Port: 8081, IPv6: v6, Method: "POST", Path: "/public/x?y=1", Every: 100 * time.Millisecond},
		)
	}
	var mu sync.Mutex
	ok, failed := map[string]int{}, map[string]error{}
	start := time.Now()
	// Until every kind had two successful exchanges (see Report).
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := RunTraffic(ctx, TrafficOptions{Report: func(tr Traffic, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Logf("%s after %s: %v", tr, time.Since(start).Round(time.Millisecond), err)
			// Before its first success a kind may wait out neighbour
			// discovery on a loaded machine (an IPv6 ping's 1s can pass
			// first); once it worked, every exchange must.
			if ok[tr.String()] > 0 {
				failed[tr.String()] = err
			}
		} else {
			ok[tr.String()]++
		}
		for _, tr := range traffic {
			if ok[tr.String()] < 2 {
				return
			}
		}
		cancel()
	}}, traffic...)
	if err != nil {
		t.Fatalf("RunTraffic: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tr := range traffic {
		if ok[tr.String()] < 2 {
			t.Errorf("%s: %d successful exchanges, want at least 2", tr, ok[tr.String()])
		}
		if err := failed[tr.String()]; err != nil {
			t.Errorf("%s failed: %v", tr, err)
		}
	}
}
