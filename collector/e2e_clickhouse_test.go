package collector_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/ring"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// e2eUDPFlows is how many extra UDP connections the ClickHouse test makes,
// so the run's records fill several batches' worth of rows.
const e2eUDPFlows = 300

// TestE2EClickHouseStoresEveryFlowOnce runs real traffic between two pods
// through the datapath and a collector whose only sink is ClickHouse (with
// the recommended queue options), stops the collector, and checks that the
// flows table holds every record the collector stored, each once: the count,
// the distinct UUIDs and a checksum over the 5-tuples and counters, computed
// in Go from the collector's store and in SQL from the table. Next to the
// datapath, the L7 test source emits a proxy's records of the two pods'
// exchanges: they arrive too, enriched with the pods.
func TestE2EClickHouseStoresEveryFlowOnce(t *testing.T) {
	labtest.RequireRoot(t)
	srv := chtest.Start(t)
	lab := newE2ELab(t)
	client, err := lab.AddPod(netlab.PodSpec{Name: "client", Labels: map[string]string{"app": "client"}})
	if err != nil {
		t.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "server", Namespace: "other", Labels: map[string]string{"app": "server"}})
	if err != nil {
		t.Fatal(err)
	}
	quietPods(t, lab, client, server)

	ctx := context.Background()
	store, err := clickhouse.Open(ctx, clickhouse.Options{DSN: srv.DSN("periscope")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	qo := clickhouse.RecommendedQueueOptions()
	qo.SpoolDir = t.TempDir()
	sinks, err := sink.Open(ctx, sink.Env{}, sink.Queued(store, qo))
	if err != nil {
		t.Fatal(err)
	}
	q := sinks.Queues()[0]
	stopSinks := sinks.Start(ctx)
	t.Cleanup(func() { stopSinks() }) //nolint:errcheck // checked below when the test gets there

	now := time.Now()
	proxy := apitest.HTTPExchange{Client: netip.AddrPortFrom(client.Addr(false), 40000), Server: netip.AddrPortFrom(server.Addr(false), 8080),
		Method: "GET", URL: "/orders", Code: 200, Latency: time.Millisecond}.Flows(now)
	proxy = append(proxy, apitest.DNSExchange{Client: netip.AddrPortFrom(client.Addr(true), 40001), Server: netip.AddrPortFrom(server.Addr(true), 53),
		Query: "server.other.", Qtype: "AAAA", IPs: []string{server.Addr(true).String()}, TTL: 30}.Flows(now.Add(time.Second))...)
	node, stopNode := startSinkNode(t, &collector.Config{
		NodeName: "e2e",
		Endpoints: []collector.EndpointConfig{
			{Name: "client", Labels: map[string]string{"app": "client"}, NetNS: client.NetNSName},
			{Name: "server", Namespace: "other", Labels: map[string]string{"app": "server"}, NetNS: server.NetNSName},
		},
	}, datapath.Config{CloseGrace: e2eCloseGrace, IdleTimeout: e2eIdleTimeout}, sinks, apitest.NewL7Source(proxy, 0))

	for _, v6 := range []bool{false, true} {
		tcpExchange(t, client, server, v6)
		udpExchange(t, client, server, v6)
		pingExchange(t, client, server, v6)
	}
	manyUDPFlows(t, client, server, e2eUDPFlows)
	settle(t, node, e2eQuietForDone, client.HostVeth.Index, server.HostVeth.Index)
	stopNode() // no record comes after this
	if err := stopSinks(); err != nil {
		t.Errorf("stop the sinks: %v", err)
	}

	var stored []api.Flow
	if err := node.c.Store().Each(flowquery.Query{}, func(e *ring.Entry) error {
		stored = append(stored, e.Flow)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen := node.c.Store().Seen(); uint64(len(stored)) != seen {
		t.Fatalf("the collector's store kept %d of its %d records: its ring is too small for the test", len(stored), seen)
	}
	ended := 0
	for i := range stored {
		if stored[i].Event == api.EventEnd {
			ended++
		}
	}
	if ended < e2eUDPFlows { // one per flow: its two veths are one record
		t.Errorf("only %d End records: the traffic was not seen", ended)
	}
	st := q.Stats()
	if st != (sink.Stats{Offered: uint64(len(stored)), Written: uint64(len(stored))}) {
		t.Errorf("queue stats %+v, want the %d records written", st, len(stored))
	}
	wn, wsum := chtest.Checksum(stored)
	got := strings.Fields(srv.Query(chtest.ChecksumSQL + "periscope.flows"))
	want := []string{strconv.FormatUint(wn, 10), strconv.FormatUint(wn, 10), strconv.FormatUint(wsum, 10)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ClickHouse has rows, distinct uuids, checksum %v; the collector stored %v", got, want)
	} else {
		t.Logf("%d records (%d End) in ClickHouse, each once; checksum %d matches the collector's store", wn, ended, wsum)
	}
	l7 := srv.Query("SELECT l7_protocol, l7_type, src_pod, dst_pod, http_status, dns_query FROM periscope.flows " +
		"WHERE l7_protocol != '' ORDER BY time, time_ns, l7_type FORMAT TSV")
	if want := "http\t1\tclient\tserver\t0\t\nhttp\t2\tserver\tclient\t200\t\n" +
		"dns\t1\tclient\tserver\t0\tserver.other.\ndns\t2\tserver\tclient\t0\tserver.other."; l7 != want {
		t.Errorf("the L7 rows in ClickHouse:\n%s\nwant:\n%s", l7, want)
	}
}

// startSinkNode is startE2ENode with sk as the collector's sink and more
// sources after the datapath; stop ends the collector (idempotent; also run
// by t.Cleanup).
func startSinkNode(t testing.TB, cfg *collector.Config, dcfg datapath.Config, sk collector.Sink, more ...collector.Source) (*e2eNode, func()) {
	t.Helper()
	topo, err := collector.Resolve(cfg)
	if err != nil {
		t.Fatalf("resolve endpoints: %v", err)
	}
	dcfg.PinPath = netlab.PinPath(t, "e2e-sink")
	dp, err := datapath.Load(dcfg)
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{
		Topology: topo, Sources: append([]collector.Source{dp}, more...), Attacher: dp, Listener: ln, Interfaces: dp.Interfaces,
		RingSize: 1 << 16, Sinks: []collector.Sink{sk},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := apitest.Start(t, "collector", c)
	return &e2eNode{c: c, dp: dp, base: "http://" + c.Addr().String()}, stop
}

// manyUDPFlows makes n UDP connections (one datagram each way) from client
// to server, over IPv4.
func manyUDPFlows(t *testing.T, client, server *netlab.Pod, n int) {
	t.Helper()
	port := udpEcho(t, server)
	buf := make([]byte, 2048)
	for i := range n {
		conn, err := client.DialUDP(t.Context(), netip.AddrPortFrom(server.Addr(false), port))
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 64+i%200) // varied sizes, so byte counts matter in the checksum
		conn.Write(msg)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Read(buf); err != nil {
			t.Fatalf("udp flow %d: %v", i, err)
		}
		conn.Close()
	}
}
