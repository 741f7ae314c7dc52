package agentevent

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// logOf appends n policy events at t0+1s, t0+2s, ... with revisions 1..n.
func logOf(capacity, n int) *Log {
	l := NewLog("node1", capacity)
	for i := 1; i <= n; i++ {
		e := PolicyChange(PolicyUpdated, "CiliumNetworkPolicy", "default", "p", uint64(i), 1)
		e.Time = t0.Add(time.Duration(i) * time.Second)
		l.Append(e)
	}
	return l
}

func revisions(t *testing.T, r Reader, q Query) []uint64 {
	t.Helper()
	var got []uint64
	if err := r.Read(context.Background(), q, func(e *Event) error {
		got = append(got, e.Policy.Revision)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestLogSelectsAndKeepsTheLastCapacityEvents(t *testing.T) {
	l := logOf(4, 6)
	tests := []struct {
		name string
		q    Query
		want []uint64
	}{
		{"every kept event, the oldest dropped", Query{}, []uint64{3, 4, 5, 6}},
		{"last", Query{Last: 2}, []uint64{5, 6}},
		{"first", Query{First: 1}, []uint64{3}},
		{"since and until bound the time", Query{Since: t0.Add(4 * time.Second), Until: t0.Add(5 * time.Second)}, []uint64{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := revisions(t, l, tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogSetsNodeAndTime(t *testing.T) {
	l := NewLog("node7", 0)
	before := time.Now()
	l.Append(Event{Type: AgentStarted, NodeName: "other"})
	var got Event
	l.Read(context.Background(), Query{}, func(e *Event) error { got = *e; return nil })
	if got.NodeName != "node7" || got.Time.Before(before) || got.Type != AgentStarted {
		t.Errorf("got %+v, want node7, a time from now, AGENT_STARTED", got)
	}
}

func TestFollowReplaysThenGoesOnLive(t *testing.T) {
	l := logOf(16, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan uint64, 16)
	done := make(chan error, 1)
	go func() {
		done <- l.Read(ctx, Query{Last: 1, Follow: true}, func(e *Event) error {
			got <- e.Policy.Revision
			return nil
		})
	}()
	if r := <-got; r != 3 {
		t.Fatalf("replayed revision %d, want 3", r)
	}
	for i := 4; i <= 5; i++ {
		l.Append(PolicyChange(PolicyDeleted, "NetworkPolicy", "x", "y", uint64(i), 0))
		select {
		case r := <-got:
			if r != uint64(i) {
				t.Fatalf("live revision %d, want %d", r, i)
			}
		case <-ctx.Done():
			t.Fatalf("live event %d never came", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("a follow ended by its context: %v, want nil", err)
	}
}

func TestEventsRoundTripThroughJSON(t *testing.T) {
	in := []Event{
		{Time: t0, NodeName: "n", Type: AgentStarted, Start: t0.Add(-time.Minute)},
		PolicyChange(PolicyUpdated, "CiliumClusterwideNetworkPolicy", "", "cw", 7, 2),
		{Time: t0, NodeName: "n", Type: EndpointCreated, Endpoint: &Endpoint{ID: 12, Labels: []string{"k8s:app=db"}, PodName: "db-0", Namespace: "shop"}},
	}
	for _, e := range in {
		b, err := AppendJSON(nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		var back Event
		if err := ParseJSON(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		b2, _ := AppendJSON(nil, &back)
		if string(b) != string(b2) {
			t.Errorf("round trip changed %s into %s", b, b2)
		}
	}
	if got := PolicyLabels("CiliumNetworkPolicy", "shop", "db"); !slices.Equal(got, []string{
		"k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy", "k8s:io.cilium.k8s.policy.name=db", "k8s:io.cilium.k8s.policy.namespace=shop"}) {
		t.Errorf("PolicyLabels: %v", got)
	}
}

func TestQueryParametersRoundTrip(t *testing.T) {
	now := t0.Add(time.Hour)
	for _, q := range []Query{{Last: 3}, {First: 2, Since: t0}, {Since: t0, Until: now}, {Follow: true, Last: 1}, {Follow: true}} {
		back, err := ParseQuery(Values(q), now)
		if err != nil || back != q {
			t.Errorf("%+v came back as %+v (%v)", q, back, err)
		}
	}
	for _, bad := range []string{"last=0", "first=1&last=1", "follow&first=2", "since=yesterday", "node=x", "since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z"} {
		v, _ := url.ParseQuery(bad)
		if _, err := ParseQuery(v, now); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if q, _ := ParseQuery(url.Values{}, now); q.Last != DefaultLast {
		t.Errorf("a bare request reads %+v, want the last %d", q, DefaultLast)
	}
}

func TestHandlerStreamsAFollow(t *testing.T) {
	l := logOf(16, 2)
	srv := httptest.NewServer(Handler(l, nil))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?follow&last=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() uint64 {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("the answer ended: %v", sc.Err())
		}
		var e Event
		if err := ParseJSON(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		return e.Policy.Revision
	}
	if r := next(); r != 2 {
		t.Errorf("replayed %d, want 2", r)
	}
	l.Append(PolicyChange(PolicyUpdated, "NetworkPolicy", "a", "b", 3, 1))
	if r := next(); r != 3 {
		t.Errorf("live %d, want 3", r)
	}

	bad, err := http.Get(srv.URL + "?last=-1")
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Errorf("last=-1: %s, want 400", bad.Status)
	}
}

func TestReadStopsAtTheFunctionsError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := logOf(8, 5).Read(context.Background(), Query{}, func(*Event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d calls, want stop after 1", err, n)
	}
}
