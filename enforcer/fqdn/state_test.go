package fqdn

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTheCacheSurvivesARestart(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "fqdn.json")
	c, err := New(Options{Now: clk.Now, StatePath: path, GCInterval: time.Hour, SaveInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Record(Answer{Endpoint: 1, Name: "api.example.com.", Addrs: addrs("198.18.5.1", "fd00::5:1"), TTL: 600}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "short.example.", Addrs: addrs("198.18.5.2"), TTL: 10}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	cancel()
	must(t, <-done)

	clk.Advance(20 * time.Second) // the short answer expires while the collector is down
	restarted, err := New(Options{Now: clk.Now, StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.NamesOf(1, netip.MustParseAddr("fd00::5:1")); !slices.Equal(got, []string{"api.example.com"}) {
		t.Fatalf("after the restart NamesOf = %q", got)
	}
	if got := restarted.Lookup(2, "short.example"); got != nil {
		t.Fatalf("an entry that expired during the restart came back: %v", got)
	}
	entries := restarted.Entries()
	if len(entries) != 2 || !entries[0].Expires.Equal(clk.Now().Add(580*time.Second)) {
		t.Fatalf("restored entries %+v, want endpoint 1's two with their expiry", entries)
	}
}

func TestSaveWritesOnlyAChangedCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fqdn.json")
	c, _ := New(Options{StatePath: path})
	must(t, c.Save())
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an unchanged empty cache wrote its state: %v", err)
	}
	must(t, c.Record(Answer{Endpoint: 1, Name: "a.example.", Addrs: addrs("198.18.5.1"), TTL: 60}))
	must(t, c.Save())
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	mtime := st.ModTime()
	time.Sleep(10 * time.Millisecond)
	must(t, c.Save())
	if st, _ := os.Stat(path); !st.ModTime().Equal(mtime) {
		t.Fatal("an unchanged cache was written again")
	}
}

func TestADamagedStateFileIsAnErrorNamingIt(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not JSON":      "{",
		"other version": `{"version":9,"entries":[]}`,
		"no address":    `{"version":1,"entries":[{"endpoint":1,"name":"a.","expires":99999999999999}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			must(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := New(Options{StatePath: path})
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("New = %v, want an error naming %s", err, path)
			}
		})
	}
}
