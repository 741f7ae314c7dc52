package ring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// flowN is a flow whose source port and time encode n.
func flowN(n int) *api.Flow {
	return &api.Flow{
		Time: t0.Add(time.Duration(n) * time.Second),
		L4:   api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(n), DestinationPort: 80},
	}
}

func ports(flows []api.Flow) []int {
	out := make([]int, len(flows))
	for i := range flows {
		out[i] = int(flows[i].L4.SourcePort)
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// evenPorts selects flows with an even source port, among those flowN makes.
var evenPorts = filter.MustParseSet(func() []string {
	var chips []string
	for p := 0; p <= 100; p += 2 {
		chips = append(chips, fmt.Sprintf("from:port=%d", p))
	}
	return chips
}()...)

// query returns copies of the flows q selects, oldest first.
func query(t testing.TB, r *Ring, q Query) []api.Flow {
	t.Helper()
	var out []api.Flow
	if _, err := r.Query(context.Background(), q, flowquery.Answer{Flow: func(f *api.Flow) error {
		out = append(out, *f)
		return nil
	}}); err != nil {
		t.Error(err)
	}
	return out
}

// Query is flowquery's, which the ring answers.
type Query = flowquery.Query

// follow follows r with q until ctx is done or fn fails, calling idle when
// caught up.
func follow(ctx context.Context, r *Ring, q Query, idle func() error, fn func(*api.Flow) error) (uint64, error) {
	oc, err := r.Follow(ctx, q, flowquery.Answer{Flow: fn, Idle: idle})
	return oc.Skipped, err
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStoreQuery(t *testing.T) {
	s := New(10)
	for i := 1; i <= 25; i++ { // wraps the ring twice and a half
		s.Write(flowN(i))
	}
	tests := []struct {
		name string
		q    Query
		want []int
	}{
		{"all returns the ring's contents oldest first", Query{}, seq(16, 25)},
		{"last returns the newest flows oldest first", Query{Last: 3}, seq(23, 25)},
		{"last larger than the ring returns everything", Query{Last: 100}, seq(16, 25)},
		{"first returns the oldest stored flows", Query{First: 2}, seq(16, 17)},
		{"since is inclusive", Query{Since: t0.Add(20 * time.Second)}, seq(20, 25)},
		{"until is inclusive", Query{Until: t0.Add(18 * time.Second)}, seq(16, 18)},
		{"since and until bound both ends", Query{Since: t0.Add(18 * time.Second), Until: t0.Add(21 * time.Second)}, seq(18, 21)},
		{"since with first", Query{Since: t0.Add(18 * time.Second), First: 2}, seq(18, 19)},
		{"until with last", Query{Until: t0.Add(21 * time.Second), Last: 2}, seq(20, 21)},
		{"filter applies before last", Query{Filter: evenPorts, Last: 2}, []int{22, 24}},
		{"filter applies before first", Query{Filter: evenPorts, First: 2}, []int{16, 18}},
		{"since after every flow returns nothing", Query{Since: t0.Add(time.Hour)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ports(query(t, s, tt.q))
			if !equalInts(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if s.Seen() != 25 || s.Stored() != 10 {
		t.Errorf("seen %d stored %d, want 25 and 10", s.Seen(), s.Stored())
	}
}

func TestStoreKeepsCopies(t *testing.T) {
	s := New(4)
	f := flowN(1)
	s.Write(f)
	f.L4.SourcePort = 99 // the datapath reuses its Flow
	if got := ports(query(t, s, Query{})); !equalInts(got, []int{1}) {
		t.Errorf("stored flow changed with the writer's: %v", got)
	}
}

func TestStoreEmpty(t *testing.T) {
	s := New(4)
	if got := query(t, s, Query{Last: 5}); len(got) != 0 {
		t.Errorf("empty store returned %d flows", len(got))
	}
}

// TestFollowNoGapNoDuplicate replays from since while a writer keeps writing:
// every flow from since on must arrive exactly once, in order.
func TestFollowNoGapNoDuplicate(t *testing.T) {
	const total = 20000
	s := New(total) // big enough that nothing is written over: a follower that keeps up skips nothing
	for i := 1; i <= 100; i++ {
		s.Write(flowN(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 101; i <= total; i++ {
			s.Write(flowN(i))
		}
	}()

	var got []int
	var last int
	skipped, err := follow(ctx, s, Query{Since: t0.Add(50 * time.Second)}, nil, func(f *api.Flow) error {
		n := int(f.L4.SourcePort) // flowN(n) for every n in order: any gap or duplicate shows
		if last != 0 && n != last+1 {
			return errors.New("gap or duplicate")
		}
		last = n
		got = append(got, n)
		if len(got) == total-49 {
			cancel()
		}
		return nil
	})
	wg.Wait()
	if err != nil {
		t.Fatalf("follow: %v (after flow %d)", err, last)
	}
	if skipped != 0 {
		t.Errorf("skipped %d with a queue as long as the stream", skipped)
	}
	if len(got) != total-49 || got[0] != 50 {
		t.Fatalf("got %d flows starting at %v, want %d starting at 50", len(got), got[:1], total-49)
	}
}

func TestFollowLastThenLive(t *testing.T) {
	s := New(16)
	for i := 1; i <= 5; i++ {
		s.Write(flowN(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []int
	caughtUp := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := follow(ctx, s, Query{Last: 2, Filter: evenPorts}, func() error {
			select {
			case caughtUp <- struct{}{}:
			default:
			}
			return nil
		}, func(f *api.Flow) error {
			got = append(got, int(f.L4.SourcePort))
			if f.L4.SourcePort == 8 {
				cancel()
			}
			return nil
		})
		done <- err
	}()
	<-caughtUp
	for i := 6; i <= 9; i++ {
		s.Write(flowN(i))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []int{2, 4, 6, 8}; !equalInts(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFollowSlowSubscriberIsSkippedNotBlocking(t *testing.T) {
	s := New(64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	started := make(chan struct{})
	type result struct {
		n       int
		skipped uint64
	}
	done := make(chan result, 1)
	go func() {
		n := 0
		skipped, _ := follow(ctx, s, Query{}, func() error {
			select {
			case <-started:
			default:
				close(started)
			}
			return nil
		}, func(*api.Flow) error {
			<-release // stuck reader
			n++
			return nil
		})
		done <- result{n, skipped}
	}()
	<-started
	writeDone := make(chan struct{})
	go func() {
		for i := 1; i <= 100; i++ {
			s.Write(flowN(i))
		}
		close(writeDone)
	}()
	select {
	case <-writeDone:
	case <-time.After(5 * time.Second):
		t.Fatal("writer blocked on a slow subscriber")
	}
	close(release)
	// Let the follower drain what it queued, then stop it.
	for s.Followers() > 0 {
		time.Sleep(10 * time.Millisecond)
		cancel()
	}
	r := <-done
	if r.skipped == 0 || uint64(r.n)+r.skipped > 100 {
		t.Errorf("delivered %d, skipped %d of 100", r.n, r.skipped)
	}
	if s.Skipped() != r.skipped {
		t.Errorf("store counts %d skipped, follower %d", s.Skipped(), r.skipped)
	}
}

func TestFollowEndsWhenStoreCloses(t *testing.T) {
	s := New(8)
	done := make(chan error, 1)
	go func() {
		_, err := follow(context.Background(), s, Query{}, nil, func(*api.Flow) error { return nil })
		done <- err
	}()
	for s.Followers() == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end on Close")
	}
	if _, err := follow(context.Background(), s, Query{}, nil, func(*api.Flow) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentQueriesDuringWrites(t *testing.T) {
	s := New(128)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				got := query(t, s, Query{Last: 50})
				for i := 1; i < len(got); i++ {
					if got[i].Time.Before(got[i-1].Time) {
						t.Errorf("out of order results")
						return
					}
				}
			}
		}()
	}
	for i := 1; i <= 20000; i++ {
		s.Write(flowN(i))
	}
	cancel()
	wg.Wait()
}

func TestAnswersBeginBeforeTheirFlows(t *testing.T) {
	s := New(8)
	for i := 1; i <= 3; i++ {
		s.Write(flowN(i))
	}
	var events []string
	a := flowquery.Answer{
		Started: func(unavailable []string) error {
			events = append(events, fmt.Sprintf("begin %d followers, unavailable %v", s.Followers(), unavailable))
			return nil
		},
		Flow: func(f *api.Flow) error {
			events = append(events, fmt.Sprint("flow ", f.L4.SourcePort))
			return nil
		},
	}
	if _, err := s.Query(context.Background(), Query{Last: 1}, a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.Idle = func() error { cancel(); return nil }
	if _, err := s.Follow(ctx, Query{Last: 1}, a); err != nil {
		t.Fatal(err)
	}
	want := []string{"begin 0 followers, unavailable []", "flow 3", "begin 1 followers, unavailable []", "flow 3"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", events, want)
	}
}

func TestQueryEndsWhenItsContextIsDone(t *testing.T) {
	s := New(1000)
	for i := 1; i <= 1000; i++ {
		s.Write(flowN(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := s.Query(ctx, Query{}, flowquery.Answer{Flow: func(*api.Flow) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) || n >= 1000 {
		t.Errorf("after %d flows: err %v, want context.Canceled before the end", n, err)
	}
}
