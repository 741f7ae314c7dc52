package collector_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// e2eFloodFlows is how many short UDP flows the flood makes (one datagram
// each, from distinct source ports).
const e2eFloodFlows = 4000

// TestE2EFloodLossIsCounted floods a one-page ring buffer with the Start
// events of thousands of short UDP flows. Events must be lost, and every
// event must be accounted for: read + lost == emitted in the datapath, and
// every event read (and every End record) reaches the collector's store.
// Lost events lose no flow: the sweeper still ends each one from the table.
func TestE2EFloodLossIsCounted(t *testing.T) {
	labtest.RequireRoot(t)
	lab := newE2ELab(t)
	client, err := lab.AddPod(netlab.PodSpec{Name: "flooder"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "sink"})
	if err != nil {
		t.Fatal(err)
	}
	quietPods(t, lab, client, server)
	node := startE2ENode(t, &collector.Config{
		NodeName: "e2e-flood",
		Endpoints: []collector.EndpointConfig{
			{Name: "flooder", NetNS: client.NetNSName},
			{Name: "sink", NetNS: server.NetNSName},
		},
	}, datapath.Config{RingBufferSize: os.Getpagesize(), IdleTimeout: time.Second, CloseGrace: 300 * time.Millisecond}, 4*e2eFloodFlows+1024)

	// A bound socket, so no ICMP port-unreachable comes back.
	sink, err := server.ListenUDP(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()
	dst := netip.AddrPortFrom(server.IPv4, uint16(sink.LocalAddr().(*net.UDPAddr).Port))

	// Open every socket first, then send from all at once, so the flood
	// outruns the reader.
	socks := make([]*net.UDPConn, e2eFloodFlows)
	for i := range socks {
		if socks[i], err = client.DialUDP(t.Context(), dst); err != nil {
			t.Fatal(err)
		}
		defer socks[i].Close()
	}
	var wg sync.WaitGroup
	const senders = 4
	for s := range senders {
		wg.Go(func() {
			for i := s; i < len(socks); i += senders {
				socks[i].Write([]byte("flood"))
			}
		})
	}
	wg.Wait()

	// Wait until the ring is drained and every flood flow has ended.
	ends := func() (onClient, onServer int) {
		var stored []api.Flow
		_ = node.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
			stored = append(stored, e.Flow)
			return nil
		})
		for _, f := range stored {
			if f.Event != api.EventEnd || f.L4.Protocol != api.ProtoUDP || f.L4.DestinationPort != dst.Port() {
				continue
			}
			// A record of two observation points ends the flow at both.
			for _, ifindex := range []uint32{f.Interface.Index, f.Other.Interface.Index} {
				switch int(ifindex) {
				case client.HostVeth.Index:
					onClient++
				case server.HostVeth.Index:
					onServer++
				}
			}
		}
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := node.dp.Stats()
		c, sv := ends()
		if s.EventsRead+s.EventsLost == s.EventsEmitted && c == e2eFloodFlows && sv == e2eFloodFlows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after 15s: stats %+v, flood End records %d on the flooder's veth and %d on the sink's, want %d each",
				s, c, sv, e2eFloodFlows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let a straggling sweep finish

	ds := node.dp.Stats()
	resp, err := http.Get(node.base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st collector.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode status: %v", err)
	}
	ds2 := node.dp.Stats()
	if ds != ds2 {
		t.Fatalf("datapath still busy: %+v then %+v", ds, ds2)
	}
	t.Logf("datapath %+v; status events read %d lost %d emitted %d, flows ended %d seen %d stored %d",
		ds, st.EventsRead, st.EventsLost, st.EventsEmitted, st.FlowsEnded, st.FlowsSeen, st.FlowsStored)

	if st.EventsLost == 0 {
		t.Errorf("no event lost: a one-page ring took a flood of %d flows (emitted %d)", e2eFloodFlows, st.EventsEmitted)
	}
	if st.EventsEmitted < 2*e2eFloodFlows {
		t.Errorf("emitted %d events, want at least a Start per flood flow on each veth (%d)", st.EventsEmitted, 2*e2eFloodFlows)
	}
	if st.EventsRead+st.EventsLost+st.EventsPending != st.EventsEmitted {
		t.Errorf("read %d + lost %d + pending %d != emitted %d", st.EventsRead, st.EventsLost, st.EventsPending, st.EventsEmitted)
	}
	if len(st.Stages) != 2 {
		t.Errorf("stages %+v, want the ring buffer's and the decoder's", st.Stages)
	}
	for _, stage := range st.Stages {
		if err := stage.Check(); err != nil {
			t.Error(err)
		}
	}
	// The decoder handed every record to the collector.
	if dec := st.Stages[1]; dec.Out != st.FlowsSeen {
		t.Errorf("the decoder passed on %d records, the collector saw %d", dec.Out, st.FlowsSeen)
	}
	if ds.DecodeErrors != 0 {
		t.Errorf("%d decode errors", ds.DecodeErrors)
	}
	// Every event read and every End went into the store: alone, or with
	// its companion's in one record (here every merged record took two,
	// a Start or an End of each veth: no flow changed verdict), or folded
	// into a record already out (a late join).
	if want := st.EventsRead - ds.DecodeErrors + st.FlowsEnded - ds.RecordsMerged - ds.LateJoins; st.FlowsSeen != want {
		t.Errorf("collector saw %d flows, want events read %d - decode errors %d + flows ended %d - merged %d - late joins %d = %d",
			st.FlowsSeen, st.EventsRead, ds.DecodeErrors, st.FlowsEnded, ds.RecordsMerged, ds.LateJoins, want)
	}
	if uint64(st.FlowsStored) != st.FlowsSeen {
		t.Errorf("stored %d flows of %d seen (ring %d)", st.FlowsStored, st.FlowsSeen, st.RingSize)
	}
	if st.FlowsEnded < 2*e2eFloodFlows {
		t.Errorf("%d flows ended, want at least %d", st.FlowsEnded, 2*e2eFloodFlows)
	}
}
