package datapath

import (
	"os"
	"testing"
)

func TestFloodCountsEveryLostEvent(t *testing.T) {
	d := loadForTest(t, Config{RingBufferSize: os.Getpagesize(), FlowTableSize: 4096})
	const flows = 2000
	for i := range flows {
		pkt := v4("198.18.0.1", "198.18.0.2", 17, udpHeader(uint16(10000+i), 53, 4))
		if ret, err := runPacket(t, d.objs.FlowIngress, pkt); err != nil || ret != tcxNext {
			t.Fatalf("run %d: ret %#x err %v", i, ret, err)
		}
	}
	read := len(drain(t, d))
	s := d.Stats()
	if s.EventsEmitted != flows {
		t.Errorf("emitted %d, want %d (one START per flow)", s.EventsEmitted, flows)
	}
	if s.EventsLost == 0 {
		t.Errorf("no loss with a one-page ring and %d flows", flows)
	}
	if uint64(read) != s.EventsRead || s.EventsRead+s.EventsLost != s.EventsEmitted {
		t.Errorf("read %d (stats %d) + lost %d != emitted %d", read, s.EventsRead, s.EventsLost, s.EventsEmitted)
	}
	t.Logf("flood: emitted %d, read %d, lost %d", s.EventsEmitted, s.EventsRead, s.EventsLost)
}
