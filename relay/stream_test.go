package relay

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/filter"
)

// withHistory gives a node a history store (a ring standing in for
// ClickHouse: its answers are in time order as ClickHouse's) holding
// flows.
func withHistory(flows []api.Flow) func(*collector.Options) {
	h := ring.New(len(flows) + 1)
	for i := range flows {
		h.Write(&flows[i])
	}
	return func(o *collector.Options) { o.History = h }
}

// A relay merges its peers' histories as it reads them, with first and
// last across peers, or per node as hubble-relay counts.
func TestHistoryIsMergedAsItIsRead(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var nodes []*testNode
	for k := range 3 {
		var fs []api.Flow
		for i := k; i < 30; i += 3 {
			f := testFlow(i+1, t0.Add(time.Duration(i)*time.Second))
			f.NodeName = fmt.Sprintf("node%d", k+1)
			fs = append(fs, f)
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("node%d", k+1), "", nil, nil, withHistory(fs)))
	}
	r, base := startRelay(t, Options{Peers: addrs(nodes)})
	seq := func(from, to int) []int {
		var s []int
		for i := from; i <= to; i++ {
			s = append(s, i)
		}
		return s
	}
	for _, tt := range []struct {
		name, query string
		want        []int
	}{
		{"all merges every node by time", "all=1", seq(1, 30)},
		{"last counts across nodes", "last=4", seq(27, 30)},
		{"first counts across nodes", "first=5", seq(1, 5)},
		{"a filter, with last", "filter=" + url.QueryEscape("node=node*") + "&last=2", []int{29, 30}},
		{"a filter, with first", "filter=" + url.QueryEscape("node=node[13]") + "&first=3", []int{1, 3, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gs, _, _ := getFlows(t, base, tt.query+"&source=clickhouse")
			var ports []int
			for _, g := range gs {
				ports = append(ports, g.port)
			}
			if !slices.Equal(ports, tt.want) {
				t.Errorf("got %v, want %v", ports, tt.want)
			}
		})
	}
	ports := func(q flowquery.Query) []int {
		var got []int
		if _, err := r.History().Query(context.Background(), q, flowquery.Answer{Flow: func(f *api.Flow) error {
			got = append(got, int(f.L4.SourcePort))
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Per node, as Hubble's GetFlows counts a number through a relay.
	if got := ports(flowquery.Query{Last: 2, PerNode: true}); !slices.Equal(got, seq(25, 30)) {
		t.Errorf("last 2 per node: %v, want %v", got, seq(25, 30))
	}
	// A set chips cannot say is matched here, the counting too.
	either := filter.NewSet([]*filter.Filter{filter.MustParse("node=node1"), filter.MustParse("from:port=2", "from:port=5")}, nil)
	if got := ports(flowquery.Query{Filter: either, Last: 3}); !slices.Equal(got, []int{22, 25, 28}) {
		t.Errorf("last 3 of a set matched here: %v, want [22 25 28]", got)
	}
	if got := ports(flowquery.Query{Filter: either, First: 3}); !slices.Equal(got, []int{1, 2, 4}) {
		t.Errorf("first 3 of a set matched here: %v, want [1 2 4]", got)
	}
}

// The answer goes out as the peers' answers come in: the relay's heap holds
// a few of their flows, not the answer.
func TestALargeHistoryAnswerIsNotGathered(t *testing.T) {
	const perNode = 60000
	t0 := time.Now().Add(-time.Hour)
	var nodes []*testNode
	for k := range 3 {
		fs := make([]api.Flow, perNode)
		for i := range fs {
			fs[i] = testFlow(i, t0.Add(time.Duration(3*i+k)*time.Millisecond))
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("node%d", k+1), "", nil, nil, withHistory(fs)))
	}
	r, _ := startRelay(t, Options{Peers: addrs(nodes)})
	waitFor(t, "all peers connected", func() bool { return r.Status().NumConnectedNodes == 3 })
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var peak uint64
	n := 0
	var last time.Time
	_, err := r.History().Query(context.Background(), flowquery.Query{}, flowquery.Answer{Line: func(line []byte) error {
		if n++; n%20000 == 0 {
			peak = max(peak, heap())
		}
		t, err := lineTime(line)
		if err != nil || t.Before(last) {
			return fmt.Errorf("flow %d out of order or unreadable: %v", n, err)
		}
		last = t
		return nil
	}})
	if err != nil || n != 3*perNode {
		t.Fatalf("read %d flows (%v), want %d in time order", n, err, 3*perNode)
	}
	grown := int64(peak) - int64(before)
	t.Logf("%d flows through the relay; its heap grew by %.1f MiB at most", n, float64(grown)/(1<<20))
	// The three nodes' own stores are in this process too, and do not grow.
	if grown > 32<<20 {
		t.Errorf("the relay's heap grew by %d bytes for a %d-flow answer: it is gathered, not streamed", grown, n)
	}
}
