package ui

import (
	"fmt"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// TestLateLiveFlowsAfterReplayAreSentOnceEach covers flows stamped before a
// replay's end that reach the live stream after the replay finished (a
// relay's merge window, a collector's lag): the ones the replay sent are
// not sent again, the ones it could not have seen (stored late) are.
func TestLateLiveFlowsAfterReplayAreSentOnceEach(t *testing.T) {
	src := newChanSource()
	stamp := time.Now().Add(-time.Second) // before the subscription
	flow := func(id byte) api.Flow {
		f := api.Flow{Time: stamp.Add(time.Duration(id) * time.Millisecond), NodeName: "n"}
		f.UUID[0], f.UUID[15] = id, 0xee
		return f
	}
	src.stored = []api.Flow{flow(1), flow(2), flow(3)}
	_, srv := serveUI(t, Options{Source: src})
	conn := dial(t, wsURL(srv, ""), nil)
	subscribe(t, conn, nil, 10)

	got := map[byte]int{}
	replayed := 0
	record := func(m *wsMsg) {
		for _, raw := range m.Flows {
			var f api.Flow
			if err := api.ParseJSON(raw, &f); err != nil {
				t.Fatal(err)
			}
			got[f.UUID[0]]++
			if m.Replay {
				replayed++
			}
		}
	}
	readUntil(t, conn, 5*time.Second, func(m *wsMsg) bool { record(m); return replayed == 3 })

	// Late, after the replay: 2 and 3 again (already sent), 4 (stored
	// after the replay ran, stamped before it ended), 5 (new).
	late := flow(5)
	late.Time = time.Now().Add(time.Hour)
	src.live <- []api.Flow{flow(2), flow(4), flow(3), late}
	readUntil(t, conn, 5*time.Second, func(m *wsMsg) bool { record(m); return got[5] > 0 })

	want := map[byte]int{1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deliveries per flow = %v, want %v", got, want)
	}
}
