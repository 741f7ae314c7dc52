package datapath

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// newConnections runs n first packets of new connections through the
// ingress program: one START event each.
func newConnections(t *testing.T, d *Datapath, n int, port uint16) {
	t.Helper()
	for i := range n {
		pkt := v4("10.0.0.1", "10.1.2.3", 6, tcpHeader(port+uint16(i), 80, 0x02))
		if _, err := runPacket(t, d.objs.FlowIngress, pkt); err != nil {
			t.Fatal(err)
		}
	}
}

// runUntilDrained runs d until the ring is empty, then stops it, and
// returns how many records it emitted.
func runUntilDrained(t *testing.T, d *Datapath) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	records := 0
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(*api.Flow) { records++ }) }()
	deadline := time.Now().Add(10 * time.Second)
	for d.Stats().EventsPending > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ring did not drain within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return records
}

// balanced checks the datapath's accounts with nothing running.
func balanced(t *testing.T, d *Datapath, when string) Stats {
	t.Helper()
	s := d.Stats()
	for _, st := range s.Stages() {
		if err := st.Check(); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	return s
}

// TestAccountsBalanceUnderDropsAndAcrossRestarts: the ring buffer's account
// (emitted = read + lost + pending) and the decoder's (read = records +
// decode errors) balance while a full ring loses events, and go on
// balancing across a clean restart and a crash that adopt the pinned maps (a
// policy in force): the events an earlier run read are not forgotten, and
// those it left in the ring are read by the next.
func TestAccountsBalanceUnderDropsAndAcrossRestarts(t *testing.T) {
	labtest.RequireRoot(t)
	pin := netlab.PinPath(t, "test-accounts")
	load := func() *Datapath {
		t.Helper()
		d, err := Load(Config{PinPath: pin, Logger: quietLogger, ReportInterval: time.Hour,
			RingBufferSize: os.Getpagesize()})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return d
	}
	capacity := os.Getpagesize() / ringRecordSize

	d1 := load()
	applyOK(t, d1, compileTest(t, testEP, testPolicies(80))) // in force: the next Load adopts
	newConnections(t, d1, 3*capacity, 10000)
	s := balanced(t, d1, "a full ring")
	if s.EventsLost == 0 || s.EventsPending == 0 {
		t.Fatalf("stats %+v: want events lost and waiting", s)
	}
	runUntilDrained(t, d1)
	s = balanced(t, d1, "drained")
	if s.EventsRead == 0 || s.RecordsEmitted != s.EventsRead {
		t.Fatalf("stats %+v", s)
	}
	newConnections(t, d1, 5, 20000) // left in the ring by the first run
	before := balanced(t, d1, "before a clean restart")
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}

	d2 := load()
	s = balanced(t, d2, "after a clean restart")
	if s.EventsRead != before.EventsRead || s.EventsPending != 5 || s.EventsEmitted != before.EventsEmitted {
		t.Errorf("after a clean restart: %+v\nbefore: %+v", s, before)
	}
	if n := runUntilDrained(t, d2); n != 5 {
		t.Errorf("the second run emitted %d records, want the 5 the first left", n)
	}
	balanced(t, d2, "the second run drained")
	newConnections(t, d2, 3*capacity, 30000) // and a loss
	before = balanced(t, d2, "before a crash")
	crash(t, d2)
	d2.closed = true

	d3 := load()
	s = balanced(t, d3, "after a crash")
	if s.EventsRead != before.EventsRead || s.EventsLost != before.EventsLost || s.EventsPending != uint64(capacity) {
		t.Errorf("after a crash: %+v\nbefore: %+v", s, before)
	}
	runUntilDrained(t, d3)
	balanced(t, d3, "the third run drained")
	newConnections(t, d3, 7, 40000)
	before = balanced(t, d3, "before a crash, then an upgrade")
	crash(t, d3)
	d3.closed = true

	// A version without user-space counters left the pins: the events read
	// are derived from the kernel's counters and the ring.
	if err := os.Remove(pin + "/" + pinCounters); err != nil {
		t.Fatal(err)
	}
	d4 := load()
	s = balanced(t, d4, "after an upgrade")
	if s.EventsRead != before.EventsRead || s.EventsPending != 7 {
		t.Errorf("after an upgrade: %+v\nbefore: %+v", s, before)
	}
	runUntilDrained(t, d4)
	balanced(t, d4, "the fourth run drained")
	applyOK(t, d4, nil)
	if err := d4.Close(); err != nil {
		t.Fatal(err)
	}
}
