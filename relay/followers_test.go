package relay

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// A relay bounds its followers as a collector does: one more is a 503,
// and its place is free again once a follower goes.
func TestFollowersBeyondTheBoundAreRefused(t *testing.T) {
	nodes := threeNodes(t, nil)
	r, base := startRelay(t, Options{Peers: addrs(nodes), MaxFollowers: 2})
	waitFor(t, "all peers connected", func() bool { return r.Status().NumConnectedNodes == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	follow := func(ctx context.Context) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/flows?follow", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first, second := follow(ctx), follow(ctx)
	defer first.Body.Close()
	if first.StatusCode != http.StatusOK || second.StatusCode != http.StatusOK {
		t.Fatalf("two follows within the bound: %s, %s", first.Status, second.Status)
	}
	third := follow(ctx)
	third.Body.Close()
	if third.StatusCode != http.StatusServiceUnavailable || third.Header.Get("Retry-After") == "" {
		t.Errorf("a third follow: %s, want 503 with Retry-After", third.Status)
	}
	if st := r.Status(); st.Followers != 2 || st.MaxFollowers != 2 {
		t.Errorf("status: %d of %d followers, want 2 of 2", st.Followers, st.MaxFollowers)
	}
	second.Body.Close()
	waitFor(t, "the second follower's place to be free", func() bool { return r.Followers().InUse() == 1 })
	again := follow(ctx)
	again.Body.Close()
	if again.StatusCode != http.StatusOK {
		t.Errorf("a follow after one went: %s, want 200", again.Status)
	}
}
