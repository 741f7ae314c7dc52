package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// chanSource is a flowquery.Reader the test drives: Follow emits what is
// sent on live; Query replays stored.
type chanSource struct {
	live   chan []api.Flow
	stored []api.Flow
}

func newChanSource() *chanSource { return &chanSource{live: make(chan []api.Flow)} }

func (s *chanSource) Follow(ctx context.Context, _ flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	for {
		select {
		case <-ctx.Done():
			return flowquery.Outcome{}, nil
		case fs := <-s.live:
			for i := range fs {
				if err := a.Flow(&fs[i]); err != nil {
					return flowquery.Outcome{}, err
				}
			}
		}
	}
}

func (s *chanSource) Query(_ context.Context, q flowquery.Query, a flowquery.Answer) (flowquery.Outcome, error) {
	for i := range s.stored {
		if !q.Filter.Match(&s.stored[i]) {
			continue
		}
		if err := a.Flow(&s.stored[i]); err != nil {
			return flowquery.Outcome{}, err
		}
	}
	return flowquery.Outcome{}, nil
}

// wsMsg is any server message.
type wsMsg struct {
	Type    string            `json:"type"`
	Sub     uint64            `json:"sub"`
	Replay  bool              `json:"replay"`
	Flows   []json.RawMessage `json:"flows"`
	Skipped uint64            `json:"skipped"`
	Sent    uint64            `json:"sent"`
	Message string            `json:"message"`
	History bool              `json:"history"`
}

func serveUI(t testing.TB, opts Options) (*UI, *httptest.Server) {
	t.Helper()
	u, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u)
	t.Cleanup(func() {
		srv.Close()
		u.Close()
	})
	return u, srv
}

func wsURL(srv *httptest.Server, query string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/ws" + query
}

func dial(t testing.TB, url string, h http.Header) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func subscribe(t testing.TB, conn *websocket.Conn, filters []string, last int) {
	t.Helper()
	if err := conn.WriteJSON(map[string]any{"type": "subscribe", "filters": filters, "last": last}); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads messages until done says so or the deadline passes.
func readUntil(t testing.TB, conn *websocket.Conn, timeout time.Duration, done func(*wsMsg) bool) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m wsMsg
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		if done(&m) {
			return
		}
	}
}

// awaitReplay subscribes and waits for the replay of the one stored flow,
// which proves the hub has the subscription.
func awaitReplay(t testing.TB, conn *websocket.Conn, filters []string) {
	t.Helper()
	subscribe(t, conn, filters, 1)
	readUntil(t, conn, 5*time.Second, func(m *wsMsg) bool { return m.Type == "flows" && m.Replay })
}

func TestSlowClientGetsSkipsCountedWhileFastClientGetsAll(t *testing.T) {
	src := newChanSource()
	src.stored = []api.Flow{labFlow(0, time.Now())}
	// A budget the fast client's batches never reach: this is about a
	// full queue (collector's TestFollowersThatNeverReadStayWithinTheirBudget
	// is about the budget).
	u, srv := serveUI(t, Options{Source: src, BatchInterval: 20 * time.Millisecond, QueueLength: 4, ClientBuffer: 16 << 20})

	fast := dial(t, wsURL(srv, ""), nil)
	slow := dial(t, wsURL(srv, ""), nil)
	awaitReplay(t, fast, nil)
	awaitReplay(t, slow, nil)

	// 40,000 flows (~28 MB of JSON) at 50,000/s: more than the slow
	// client's socket buffers hold, so its queue fills.
	const total, chunk = 40000, 1000
	var fastGot, fastSkipped uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		// Counting flows by their opening bytes keeps this client fast
		// (also under -race); parsing is for the other tests.
		fast.SetReadDeadline(time.Now().Add(60 * time.Second))
		for fastGot < total {
			_, data, err := fast.ReadMessage()
			if err != nil {
				t.Errorf("fast client: %v after %d flows", err, fastGot)
				return
			}
			if !bytes.HasPrefix(data, []byte(`{"type":"flows"`)) {
				continue
			}
			fastGot += uint64(bytes.Count(data, []byte(`{"flow":`)))
			if !bytes.HasSuffix(data, []byte(`,"skipped":0}`)) {
				fastSkipped++
			}
		}
	})
	now := time.Now()
	for i := 0; i < total; i += chunk {
		batch := make([]api.Flow, chunk)
		for k := range batch {
			batch[k] = labFlow(i+k, now.Add(time.Duration(i+k)*time.Microsecond))
		}
		src.live <- batch
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if fastGot != total || fastSkipped != 0 {
		t.Errorf("fast client got %d flows with %d skipped, want %d and 0", fastGot, fastSkipped, total)
	}

	// The slow client now reads what it was sent; what it got plus what it
	// was told it missed is everything.
	var got, skipped uint64
	readUntil(t, slow, 30*time.Second, func(m *wsMsg) bool {
		switch m.Type {
		case "flows":
			got += uint64(len(m.Flows))
			skipped = max(skipped, m.Skipped)
		case "status":
			skipped = max(skipped, m.Skipped)
		}
		return got+skipped >= total
	})
	if skipped == 0 || got+skipped != total {
		t.Errorf("slow client got %d flows and %d skipped, want some skipped and %d in all", got, skipped, total)
	}
	st, err := u.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.UpstreamSkipped != 0 {
		t.Errorf("hub skipped %d flows upstream; the fast client's count would be wrong", st.UpstreamSkipped)
	}
	t.Logf("slow client: %d delivered, %d skipped; hub: %+v", got, skipped, st)
}

func TestWebSocketRefusals(t *testing.T) {
	_, srv := serveUI(t, Options{Source: newChanSource(), Token: "s3cret"})
	tests := []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"a socket without the token is unauthorized", "", nil, http.StatusUnauthorized},
		{"a socket with a wrong token is unauthorized", "?token=guess", nil, http.StatusUnauthorized},
		{"a socket from a foreign origin is forbidden", "?token=s3cret",
			http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"a socket with the token as a parameter is accepted", "?token=s3cret",
			http.Header{"Origin": {srv.URL}}, http.StatusSwitchingProtocols},
		{"a socket with the token as a bearer header is accepted", "",
			http.Header{"Authorization": {"Bearer s3cret"}}, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, resp, err := websocket.DefaultDialer.Dial(wsURL(srv, tt.query), tt.header)
			if conn != nil {
				conn.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("HTTP %d, want %d (err %v)", resp.StatusCode, tt.want, err)
			}
		})
	}
}

func TestAllowedOriginsReplaceTheSameHostRule(t *testing.T) {
	_, srv := serveUI(t, Options{Source: newChanSource(), AllowedOrigins: []string{"https://console.example"}})
	for origin, want := range map[string]int{
		"https://console.example": http.StatusSwitchingProtocols,
		srv.URL:                   http.StatusForbidden,
	} {
		conn, resp, _ := websocket.DefaultDialer.Dial(wsURL(srv, ""), http.Header{"Origin": {origin}})
		if conn != nil {
			conn.Close()
		}
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %s: got %v, want HTTP %d", origin, resp, want)
		}
	}
}

func TestBadFilterChipYieldsAnErrorMessage(t *testing.T) {
	_, srv := serveUI(t, Options{Source: newChanSource()})
	conn := dial(t, wsURL(srv, ""), nil)
	subscribe(t, conn, []string{"from:label=app=frontend", "to:port=http"}, 0)
	readUntil(t, conn, 5*time.Second, func(m *wsMsg) bool {
		if m.Type != "error" {
			return false
		}
		if !strings.HasPrefix(m.Message, `filter "to:port=http": `) {
			t.Errorf("error %q does not name the chip", m.Message)
		}
		return true
	})
}

func TestFiltersApplyOnTheServer(t *testing.T) {
	src := newChanSource()
	src.stored = []api.Flow{labFlow(9, time.Now())} // outsider → db, dropped
	_, srv := serveUI(t, Options{Source: src, BatchInterval: 10 * time.Millisecond})
	conn := dial(t, wsURL(srv, ""), nil)
	awaitReplay(t, conn, []string{"verdict=DROPPED"})
	now := time.Now().Add(time.Second)
	batch := make([]api.Flow, len(patternIndex)*10)
	for i := range batch {
		batch[i] = labFlow(i, now)
	}
	src.live <- batch
	want := 0
	for i := range batch {
		if batch[i].Verdict == api.VerdictDropped {
			want++
		}
	}
	got := 0
	readUntil(t, conn, 5*time.Second, func(m *wsMsg) bool {
		for _, raw := range m.Flows {
			var f api.Flow
			if err := api.ParseJSON(raw, &f); err != nil {
				t.Fatal(err)
			}
			if f.Verdict != api.VerdictDropped {
				t.Fatalf("got a %s flow through verdict=DROPPED", f.Verdict)
			}
			got++
		}
		return got >= want
	})
}

func TestReplayThenLiveWithoutDuplicates(t *testing.T) {
	l := startLab(t, 2000, Options{})
	for l.c.Store().Seen() < 500 {
		time.Sleep(10 * time.Millisecond)
	}
	conn := dial(t, "ws"+strings.TrimPrefix(l.base, "http")+"/api/v1/ws", nil)
	subscribe(t, conn, nil, 300)
	seen := map[string]bool{}
	replayed := 0
	readUntil(t, conn, 10*time.Second, func(m *wsMsg) bool {
		for _, raw := range m.Flows {
			var f api.Flow
			if err := api.ParseJSON(raw, &f); err != nil {
				t.Fatal(err)
			}
			key := string(f.UUID[:4])
			if seen[key] {
				t.Fatalf("flow %x delivered twice", f.UUID[:4])
			}
			seen[key] = true
			if m.Replay {
				replayed++
			}
		}
		return len(seen) >= 1500
	})
	if replayed != 300 {
		t.Errorf("replayed %d flows, want 300", replayed)
	}
}

func TestAppIsServed(t *testing.T) {
	_, srv := serveUI(t, Options{Source: newChanSource()})
	for _, path := range []string{"/", "/app.js", "/style.css", "/table.js", "/map.js"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
		}
	}
}
