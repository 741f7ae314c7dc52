package clickhouse

import (
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// A connection recorded at two observation points keeps both in the
// store: the second point's interface, verdict and counts read back, and
// so do the processes of both sockets.
func TestAConnectionOfTwoPointsIsStoredAndReadBackEqual(t *testing.T) {
	var flows []api.Flow
	for _, f := range genFlows(11, 400, time.Now().UTC().Add(-time.Hour)) {
		if f.Paired() {
			flows = append(flows, f)
		}
	}
	if len(flows) < 20 {
		t.Fatalf("only %d flows of two points generated", len(flows))
	}
	s := storeWith(t, flows)
	got, err := query(t, s, flowquery.Query{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[[16]byte]api.Flow{}
	for _, f := range got {
		byID[f.UUID] = f
	}
	for i, want := range flows {
		g, ok := byID[want.UUID]
		if !ok {
			t.Fatalf("flow %d not read back", i)
		}
		if g.Other != want.Other || g.Process != want.Process || g.DestinationProcess != want.DestinationProcess ||
			g.Counters != want.Counters {
			t.Errorf("flow %d read back as\n other %+v, processes %+v %+v, counters %+v\nwant\n other %+v, processes %+v %+v, counters %+v",
				i, g.Other, g.Process, g.DestinationProcess, g.Counters, want.Other, want.Process, want.DestinationProcess, want.Counters)
		}
	}
}
