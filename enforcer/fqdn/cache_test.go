package fqdn

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// clock is a settable time for tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestRecordedAnswersNameAddressesPerEndpoint(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Record(Answer{Endpoint: 1, Name: "api.example.com.", Addrs: addrs("198.18.5.1", "fd00::5:1"), TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 1, Name: "www.example.com.", Addrs: addrs("198.18.5.1"), TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "db.internal.", Addrs: addrs("198.18.5.2"), TTL: 60}))

	tests := []struct {
		name string
		ep   uint32
		addr string
		want []string
	}{
		{"two names of one address, sorted, without the dot", 1, "198.18.5.1", []string{"api.example.com", "www.example.com"}},
		{"an AAAA address", 1, "fd00::5:1", []string{"api.example.com"}},
		{"an IPv4-mapped form of a cached address", 1, "::ffff:198.18.5.1", []string{"api.example.com", "www.example.com"}},
		{"another endpoint's name is not this endpoint's", 1, "198.18.5.2", nil},
		{"the endpoint that resolved it", 2, "198.18.5.2", []string{"db.internal"}},
		{"endpoint 0 (not local) has no names", 0, "198.18.5.2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.NamesOf(tt.ep, netip.MustParseAddr(tt.addr)); !slices.Equal(got, tt.want) {
				t.Fatalf("NamesOf(%d, %s) = %q, want %q", tt.ep, tt.addr, got, tt.want)
			}
		})
	}
	if got := c.Lookup(1, "API.example.com"); !slices.Equal(got, addrs("198.18.5.1", "fd00::5:1")) {
		t.Errorf("Lookup = %v", got)
	}

	f := api.Flow{
		IP:          api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.5.2")},
		Source:      api.Endpoint{ID: 2},
		Destination: api.Endpoint{},
	}
	c.Annotate(&f)
	if !slices.Equal(f.DestinationNames, []string{"db.internal"}) || f.SourceNames != nil {
		t.Errorf("egress flow: source names %q, destination names %q", f.SourceNames, f.DestinationNames)
	}
	reply := api.Flow{
		IP:          api.IP{Source: netip.MustParseAddr("198.18.5.2"), Destination: netip.MustParseAddr("198.18.0.2")},
		Destination: api.Endpoint{ID: 2},
	}
	c.Annotate(&reply)
	if !slices.Equal(reply.SourceNames, []string{"db.internal"}) || reply.DestinationNames != nil {
		t.Errorf("ingress flow: source names %q, destination names %q", reply.SourceNames, reply.DestinationNames)
	}
	if n := testing.AllocsPerRun(100, func() { c.Annotate(&f) }); n != 0 {
		t.Errorf("Annotate allocates %v times", n)
	}
}

func TestAdmitRunsBeforeRecordReturnsWithTheMinimumTTL(t *testing.T) {
	var got []Admission
	var c *Cache
	c, err := New(Options{MinTTL: 30 * time.Second, Admit: func(a Admission) error {
		got = append(got, a)
		if len(c.Lookup(a.Endpoint, a.Name)) != len(a.Addrs) {
			t.Errorf("admitting %s: its addresses are not cached yet", a.Name)
		}
		if a.Name == "fail.example." {
			return errors.New("policy map full")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Record(Answer{Endpoint: 3, Name: "short.example.", Addrs: addrs("198.18.5.3"), TTL: 5}))
	must(t, c.Record(Answer{Endpoint: 3, Name: "long.example.", Addrs: addrs("198.18.5.4"), TTL: 300}))
	must(t, c.Record(Answer{Endpoint: 3, Name: "empty.example.", TTL: 300}))
	err = c.Record(Answer{Endpoint: 3, Name: "fail.example.", Addrs: addrs("198.18.5.5"), TTL: 300})
	if err == nil || !strings.Contains(err.Error(), "policy map full") || !strings.Contains(err.Error(), "fail.example.") {
		t.Fatalf("a failing Admit must fail Record with context: %v", err)
	}
	want := []Admission{
		{Endpoint: 3, Name: "short.example.", Addrs: addrs("198.18.5.3"), TTL: 30 * time.Second},
		{Endpoint: 3, Name: "long.example.", Addrs: addrs("198.18.5.4"), TTL: 300 * time.Second},
		{Endpoint: 3, Name: "fail.example.", Addrs: addrs("198.18.5.5"), TTL: 300 * time.Second},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("admissions\n got %v\nwant %v", got, want)
	}
}

func TestGCExpiresEntriesAtTheirTTLAndTellsThePolicy(t *testing.T) {
	clk := newClock()
	var expired []Expiry
	c, err := New(Options{Now: clk.Now, Expire: func(x Expiry) { expired = append(expired, x) }})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Record(Answer{Endpoint: 1, Name: "a.example.", Addrs: addrs("198.18.5.1", "198.18.5.2"), TTL: 10}))
	must(t, c.Record(Answer{Endpoint: 1, Name: "b.example.", Addrs: addrs("198.18.5.3"), TTL: 100}))
	clk.Advance(5 * time.Second)
	// A later answer for the same pair extends it; a shorter one does not
	// shorten it.
	must(t, c.Record(Answer{Endpoint: 1, Name: "a.example.", Addrs: addrs("198.18.5.2"), TTL: 20}))
	must(t, c.Record(Answer{Endpoint: 1, Name: "b.example.", Addrs: addrs("198.18.5.3"), TTL: 1}))

	clk.Advance(5 * time.Second) // a/198.18.5.1 reaches its TTL
	if n := c.GC(); n != 1 {
		t.Fatalf("GC removed %d entries, want 1", n)
	}
	if got := c.NamesOf(1, netip.MustParseAddr("198.18.5.1")); got != nil {
		t.Errorf("expired address still named %q", got)
	}
	if got := c.NamesOf(1, netip.MustParseAddr("198.18.5.2")); !slices.Equal(got, []string{"a.example"}) {
		t.Errorf("refreshed address named %q", got)
	}
	clk.Advance(15 * time.Second)
	c.GC()
	clk.Advance(100 * time.Second)
	c.GC()
	want := []Expiry{
		{Endpoint: 1, Name: "a.example.", Addrs: addrs("198.18.5.1")},
		{Endpoint: 1, Name: "a.example.", Addrs: addrs("198.18.5.2")},
		{Endpoint: 1, Name: "b.example.", Addrs: addrs("198.18.5.3")},
	}
	if fmt.Sprint(expired) != fmt.Sprint(want) {
		t.Fatalf("expiries\n got %v\nwant %v", expired, want)
	}
	if s := c.Stats(); s.Entries != 0 || s.Endpoints != 0 {
		t.Fatalf("cache not empty after every TTL passed: %+v", s)
	}
}

func TestForgetDropsAnEndpointsEntries(t *testing.T) {
	var expired []Expiry
	c, _ := New(Options{Expire: func(x Expiry) { expired = append(expired, x) }})
	must(t, c.Record(Answer{Endpoint: 1, Name: "a.example.", Addrs: addrs("198.18.5.1"), TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "a.example.", Addrs: addrs("198.18.5.1"), TTL: 60}))
	c.Forget(1)
	if c.NamesOf(1, netip.MustParseAddr("198.18.5.1")) != nil || c.NamesOf(2, netip.MustParseAddr("198.18.5.1")) == nil {
		t.Fatal("Forget(1) must drop endpoint 1's names only")
	}
	if len(expired) != 1 || expired[0].Endpoint != 1 {
		t.Fatalf("expiries %v, want endpoint 1's one", expired)
	}
}

// A flood of unique names stays within the bounds, evicts the flooder's own
// entries first, and every eviction reaches the policy.
func TestAFloodOfUniqueNamesStaysBounded(t *testing.T) {
	clk := newClock()
	admitted := map[Entry]bool{}
	c, err := New(Options{
		Now: clk.Now, MaxPerEndpoint: 1000, MaxEntries: 1500,
		Admit: func(a Admission) error {
			for _, ad := range a.Addrs {
				admitted[Entry{Endpoint: a.Endpoint, Name: a.Name, Addr: ad}] = true
			}
			return nil
		},
		Expire: func(x Expiry) {
			for _, ad := range x.Addrs {
				delete(admitted, Entry{Endpoint: x.Endpoint, Name: x.Name, Addr: ad})
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Record(Answer{Endpoint: 2, Name: "victim.example.", Addrs: addrs("198.18.9.9"), TTL: 1}))
	for i := range 600 {
		must(t, c.Record(Answer{Endpoint: 3, Name: fmt.Sprintf("n%d.other.", i), Addrs: addrs("198.18.9.8"), TTL: 3600}))
	}
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		must(t, c.Record(Answer{Endpoint: 1, Name: fmt.Sprintf("x%d.flood.example.", i), Addrs: []netip.Addr{a}, TTL: 3600}))
		if i%1000 == 0 {
			clk.Advance(time.Second)
		}
	}
	s := c.Stats()
	if s.Entries > 1500 {
		t.Fatalf("%d entries, bound 1500", s.Entries)
	}
	var perEP [4]int
	for _, e := range c.Entries() {
		perEP[e.Endpoint]++
	}
	if perEP[1] > 1000 || perEP[2] != 1 || perEP[3] != 600 {
		t.Fatalf("entries per endpoint %v: the flooder (1) must stay under its bound and the others keep theirs", perEP)
	}
	if c.NamesOf(2, netip.MustParseAddr("198.18.9.9")) == nil {
		t.Fatal("the flood evicted another endpoint's only name")
	}
	if len(admitted) != s.Entries {
		t.Fatalf("the policy holds %d admitted entries, the cache %d: an eviction was not reported", len(admitted), s.Entries)
	}
	if s.Evictions == 0 {
		t.Fatal("no evictions counted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A policy that reads the cache when a hook calls it ends holding what the
// cache holds, whatever runs concurrently; Expires come one at a time.
func TestAPolicyReadingTheCacheOnEveryHookEndsEqualToIt(t *testing.T) {
	clk := newClock()
	var mu sync.Mutex
	var c *Cache
	policy := map[Entry]bool{}
	expiring := 0
	resync := func() {
		mu.Lock()
		defer mu.Unlock()
		clear(policy)
		for _, e := range c.Entries() {
			e.Expires = time.Time{}
			policy[e] = true
		}
	}
	var err error
	c, err = New(Options{
		Now: clk.Now, MaxPerEndpoint: 50, MaxEntries: 120,
		Admit: func(Admission) error {
			resync()
			return nil
		},
		Expire: func(Expiry) {
			mu.Lock()
			expiring++
			if expiring > 1 {
				t.Error("two Expire calls at once")
			}
			mu.Unlock()
			resync()
			mu.Lock()
			expiring--
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				a := netip.AddrFrom4([4]byte{198, 19, byte(w), byte(i % 97)})
				_ = c.Record(Answer{Endpoint: uint32(w % 3), Name: fmt.Sprintf("n%d.example.", i%53), Addrs: []netip.Addr{a}, TTL: 1 + uint32(i%3)})
			}
		})
	}
	wg.Go(func() {
		for range 500 {
			clk.Advance(300 * time.Millisecond)
			c.GC()
			_ = c.NamesOf(1, netip.AddrFrom4([4]byte{198, 19, 1, 1}))
		}
	})
	wg.Wait()
	resync()
	if n := len(c.Entries()); n != len(policy) || n == 0 {
		t.Fatalf("the policy holds %d entries, the cache %d", len(policy), n)
	}
}

// Admit runs outside the cache's locks: two answers are admitted at once.
func TestAdmissionsRunConcurrently(t *testing.T) {
	both := make(chan struct{})
	var inside sync.WaitGroup
	inside.Add(2)
	c, err := New(Options{Admit: func(Admission) error {
		inside.Done()
		<-both
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for i := range 2 {
		go func() {
			done <- c.Record(Answer{Endpoint: uint32(i + 1), Name: "a.example.", Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")}, TTL: 60})
		}()
	}
	waited := make(chan struct{})
	go func() { inside.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the second Admit did not start while the first ran")
	}
	close(both)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestAllNamesAreTheNodes(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("198.18.9.1"), netip.MustParseAddr("198.18.9.2")
	must(t, c.Record(Answer{Endpoint: 1, Name: "www.example.com.", Addrs: []netip.Addr{a, b}, TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "api.example.com.", Addrs: []netip.Addr{a}, TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "www.example.com.", Addrs: []netip.Addr{a}, TTL: 60}))
	got := c.AllNames()
	if want := []string{"api.example.com", "www.example.com"}; fmt.Sprint(got[a]) != fmt.Sprint(want) {
		t.Fatalf("names of %s: %v, want %v (both endpoints', each once)", a, got[a], want)
	}
	if want := []string{"www.example.com"}; fmt.Sprint(got[b]) != fmt.Sprint(want) || len(got) != 2 {
		t.Fatalf("AllNames() = %v", got)
	}
}

func TestTryRecordCachesWithoutWaitingOnlyWhatThePolicyAdmitsAlready(t *testing.T) {
	addr := netip.MustParseAddr("198.18.1.1")
	ans := Answer{Endpoint: 1, Name: "a.example.", Addrs: []netip.Addr{addr}, TTL: 60}
	admits := 0
	admit := func(Admission) error { admits++; return nil }
	for _, tc := range []struct {
		name             string
		admit            func(Admission) error
		admitted         func(Admission) bool
		wantOK, wantKept bool
	}{
		{name: "no policy to admit into", wantOK: true, wantKept: true},
		{name: "admitted already", admit: admit, admitted: func(Admission) bool { return true }, wantOK: true, wantKept: true},
		{name: "the policy must change", admit: admit, admitted: func(Admission) bool { return false }, wantOK: false, wantKept: true},
		{name: "no way to tell", admit: admit, wantOK: false, wantKept: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []Admission
			admitted := tc.admitted
			if admitted != nil {
				admitted = func(a Admission) bool { seen = append(seen, a); return tc.admitted(a) }
			}
			c, err := New(Options{Admit: tc.admit, Admitted: admitted})
			if err != nil {
				t.Fatal(err)
			}
			before := admits
			ok, err := c.TryRecord(ans)
			if err != nil || ok != tc.wantOK {
				t.Fatalf("TryRecord = %v, %v; want %v", ok, err, tc.wantOK)
			}
			if admits != before {
				t.Error("TryRecord called the Admit hook (which may wait)")
			}
			if kept := len(c.AllNames()[addr]) > 0; kept != tc.wantKept {
				t.Errorf("cached %v, want %v", kept, tc.wantKept)
			}
			if admitted != nil && (len(seen) != 1 || seen[0].Name != ans.Name || seen[0].TTL != time.Minute) {
				t.Errorf("Admitted asked %+v, want the answer once with its TTL", seen)
			}
		})
	}
}

func TestAddrNamesAreAllNamesOfTheAddressesAsked(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Record(Answer{Endpoint: 1, Name: "api.example.com.", Addrs: addrs("198.18.5.1", "fd00::5:1"), TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "www.example.com.", Addrs: addrs("198.18.5.1"), TTL: 60}))
	must(t, c.Record(Answer{Endpoint: 2, Name: "db.internal.", Addrs: addrs("198.18.5.2"), TTL: 60}))
	asked := addrs("198.18.5.1", "::ffff:198.18.5.2", "198.18.5.9")
	got := c.AddrNames(asked)
	all := c.AllNames()
	for _, a := range asked {
		a = a.Unmap()
		if !slices.Equal(got[a], all[a]) {
			t.Errorf("AddrNames gives %s %v, AllNames %v", a, got[a], all[a])
		}
	}
	if len(got) != 2 || !slices.Equal(got[netip.MustParseAddr("198.18.5.1")], []string{"api.example.com", "www.example.com"}) {
		t.Fatalf("AddrNames = %v", got)
	}
}
