package datapath

import (
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// tcxNext is TCX_NEXT (TC_ACT_UNSPEC) as PROG_TEST_RUN reports it.
const tcxNext = 0xffffffff

// quietLogger keeps the datapath's logs out of the test output.
var quietLogger = slog.New(slog.DiscardHandler)

// loadForTest loads a Datapath pinned under a directory of its own,
// closed (and checked clean) by t.Cleanup.
func loadForTest(t testing.TB, cfg Config) *Datapath {
	t.Helper()
	labtest.RequireRoot(t)
	if cfg.PinPath == "" {
		cfg.PinPath = netlab.PinPath(t, "test")
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	d, err := Load(cfg)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load: %+v", ve)
		}
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if _, err := os.Stat(cfg.PinPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin path %s still exists after Close (stat: %v)", cfg.PinPath, err)
			os.RemoveAll(cfg.PinPath) // leave the machine clean even when the test failed
		}
	})
	return d
}

// runPacket runs prog once on pkt and returns the program's verdict.
func runPacket(t testing.TB, prog *ebpf.Program, pkt []byte) (uint32, error) {
	t.Helper()
	return prog.Run(&ebpf.RunOptions{Data: pkt})
}

// drain reads every event waiting in the ring and decodes it.
func drain(t testing.TB, d *Datapath) []api.Flow {
	t.Helper()
	dec := NewDecoder(d.clock, 1)
	dec.names = &d.names
	var out []api.Flow
	readRing(t, d, func(sample []byte) {
		var f api.Flow
		if err := dec.Decode(sample, &f); err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, f)
	})
	return out
}

// readRing hands every record waiting in the ring to each, counting it as
// read, and returns once the ring has been empty for 20ms.
func readRing(t testing.TB, d *Datapath, each func(sample []byte)) {
	t.Helper()
	var rec ringbuf.Record
	for {
		d.reader.SetDeadline(time.Now().Add(20 * time.Millisecond))
		err := d.reader.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatalf("read ring: %v", err)
		}
		d.eventsRead.Add(1)
		each(rec.RawSample)
	}
}

// flowCount returns how many entries the flow table holds.
func flowCount(t testing.TB, d *Datapath) int {
	t.Helper()
	n := 0
	var k tcFlowFlowKey
	var v tcFlowFlowValue
	it := d.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate flows: %v", err)
	}
	return n
}

// clearFlows empties the flow table.
func clearFlows(t testing.TB, d *Datapath) {
	t.Helper()
	var k tcFlowFlowKey
	var keys []tcFlowFlowKey
	it := d.objs.Flows.Iterate()
	var v tcFlowFlowValue
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	for i := range keys {
		_ = d.objs.Flows.Delete(&keys[i])
	}
}
