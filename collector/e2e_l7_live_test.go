package collector_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector/ring"
)

// liveCounts are the answers of one kind of request under live updates.
type liveCounts struct {
	passed, refused, failed atomic.Int64
}

// TestE2EL7RulesUpdatedUnderLiveTraffic switches the server's L7 rules
// back and forth while clients send requests on fresh and on kept-alive
// connections: a request both rule sets allow never fails, one neither
// allows never passes (nor reaches the server); every access-log entry
// is exactly one L7 record, as many as the answers the clients got.
func TestE2EL7RulesUpdatedUnderLiveTraffic(t *testing.T) {
	// The ring keeps every record of the run (a quiet machine makes ~25k
	// exchanges: four L7 records and the connections' own each): the
	// count below reads them there.
	l := newL7Lab(t, l7LabOptions{ringSize: 1 << 18})
	rules := func(only string) string {
		return serverL7("live", "[{method: GET, path: '/both/.*'}, {method: GET, path: '/"+only+"/.*'}]")
	}
	l.applyScenario(t, l7Scenario{name: "old", yaml: rules("old")})
	seq := l.c.Store().Seen()
	entries0 := l.proxy.Stats().AccessLog

	kinds := []string{"both", "old", "new", "neither"}
	counts := map[string]*liveCounts{}
	for _, k := range kinds {
		counts[k] = &liveCounts{}
	}
	var answered atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	server := netip.AddrPortFrom(l.addr("server", false), l7Port)
	record := func(kind string, status int, err error) {
		c := counts[kind]
		switch {
		case err != nil:
			if c.failed.Add(1) <= 3 {
				t.Logf("%s failed: %v", kind, err)
			}
		case status == 200:
			c.passed.Add(1)
		default:
			c.refused.Add(1)
		}
		if err == nil {
			answered.Add(1)
		}
	}
	// Fresh connections, one per request.
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				kind := kinds[(i+w)%len(kinds)]
				// A port of its own (below the ephemeral range): see the
				// TIME_WAIT limit in docs/L7.md.
				a := l.send("client", server, l.nextPort(), "live-"+kind, l7Request{target: "/" + kind + "/" + strconv.Itoa(i)})
				record(kind, a.status, a.err)
			}
		})
	}
	// Kept-alive connections through Envoy.
	for w := range 2 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1,
				DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
					return l.pods["client"].DialTCP(ctx, netip.MustParseAddrPort(addr))
				}}}
			defer c.CloseIdleConnections()
			for i := 0; ctx.Err() == nil; i++ {
				kind := kinds[(i+w+1)%len(kinds)]
				req, _ := http.NewRequest("GET", "http://"+server.String()+"/"+kind+"/k"+strconv.Itoa(i), nil)
				req.Header.Set("X-Probe", "live-"+kind)
				resp, err := c.Do(req)
				if err != nil {
					record(kind, 0, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				record(kind, resp.StatusCode, nil)
			}
		})
	}
	for i := range 20 {
		time.Sleep(250 * time.Millisecond)
		next := "new"
		if i%2 == 1 {
			next = "old"
		}
		if _, _, err := l.store.Apply("live.yaml", []byte(rules(next))); err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	for _, k := range kinds {
		c := counts[k]
		t.Logf("%s: %d passed, %d refused, %d failed", k, c.passed.Load(), c.refused.Load(), c.failed.Load())
	}
	if c := counts["both"]; c.refused.Load() != 0 || c.failed.Load() != 0 || c.passed.Load() == 0 {
		t.Errorf("requests both rule sets allow: %d refused, %d failed (of %d)", c.refused.Load(), c.failed.Load(),
			c.passed.Load()+c.refused.Load()+c.failed.Load())
	}
	if c := counts["neither"]; c.passed.Load() != 0 || len(l.serverSaw("live-neither")) != 0 {
		t.Errorf("requests neither rule set allows: %d passed, the server saw %d", c.passed.Load(), len(l.serverSaw("live-neither")))
	}
	if counts["old"].passed.Load() == 0 || counts["new"].passed.Load() == 0 {
		t.Error("the rules never changed: no old-only or no new-only request passed")
	}

	// Every answer is one access-log entry is one L7 RESPONSE record (its
	// REQUEST record goes the other way).
	want := answered.Load()
	client := l.addr("client", false)
	oldest := uint64(0) // the ring's oldest record at the last count
	countRecords := func() (n int64) {
		oldest = 0
		_ = l.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
			if oldest == 0 || e.Seq < oldest {
				oldest = e.Seq
			}
			if e.Seq > seq && e.Flow.Type == api.FlowTypeL7 && e.Flow.IP.Destination == client && e.Flow.L7.Type == api.L7TypeResponse {
				n++
			}
			return nil
		})
		return n
	}
	deadline := time.Now().Add(15 * time.Second)
	for countRecords() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	got := countRecords()
	if oldest > seq+1 {
		t.Fatalf("the ring wrapped (its oldest record is %d, the run began after %d): size it for the run's records", oldest, seq)
	}
	st := l.proxy.Stats().AccessLog
	entries, records := st.Entries-entries0.Entries, st.Records-entries0.Records
	if got != want || int64(entries) != want || records != 2*entries {
		t.Fatalf("%d answers, %d access-log entries, %d records made (want two per entry), %d L7 responses stored: want all equal", want, entries, records, got)
	}
	t.Logf("%d answers, %d access-log entries, %d L7 records", want, entries, got)
}
