package collector_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// The kernel-to-queryable benchmark's traffic: new UDP connections (one
// datagram each) from one pod to another at a steady rate. Each makes a
// Start record on both pods' host veths and, after the idle timeout, an End
// record on each: 4 rows per connection, 4000 rows/s, far below what one
// ClickHouse 18.16 takes.
const (
	latencyConnRate  = 1000 // connections per second
	latencyDuration  = 20 * time.Second
	latencyPoll      = 20 * time.Millisecond // how often the poller asks ClickHouse
	latencyIdle      = 2 * time.Second       // datapath IdleTimeout: End records flow during the run
	latencySettleFor = 15 * time.Second      // after the traffic, for the last rows to be queryable
)

// BenchmarkE2EKernelToQueryable measures, for each Start record (a
// connection's first packet), the time from the kernel's timestamp of that
// packet (Flow.Time: bpf_ktime_get_boot_ns in the TC program, turned into
// wall-clock time by datapath.Clock) to the moment a polling query on
// ClickHouse first returns the row. Real traffic runs between two netlab
// pods through the real datapath and a collector whose sink is ClickHouse
// behind a Queue with clickhouse.RecommendedQueueOptions (the default
// batching). It reports p50/p99/max of that latency (the goal: p99
// within 2s), and of its stages: kernel to the collector's sink (Consume),
// and kernel to the acknowledgement of the insert that holds the row.
//
// The poller selects the Start rows' UUIDs every 20ms (from the oldest one
// not seen yet); a row's visibility time is when the first query that
// returned it completed, an upper bound at most one poll interval plus the
// query's duration late.
//
//	sudo go test ./collector/ -run '^$' -bench E2EKernelToQueryable -benchtime 1x
func BenchmarkE2EKernelToQueryable(b *testing.B) {
	labtest.RequireRoot(b)
	srv := chtest.Start(b)
	lab := labtest.NewLab(b)
	pods := addPods(b, lab, netlab.PodSpec{Name: "client"}, netlab.PodSpec{Name: "server", Namespace: "other"})
	client, server := pods[0], pods[1]

	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := clickhouse.Open(ctx, clickhouse.Options{DSN: srv.DSN("periscope"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	lat := &latencyProbe{kernel: map[[16]byte]time.Time{}, acked: map[[16]byte]time.Time{}, seen: map[[16]byte]time.Time{}}
	qo := clickhouse.RecommendedQueueOptions()
	qo.Logger = quiet
	sinks, err := sink.Open(ctx, sink.Env{Logger: quiet}, sink.Queued(&ackSink{Store: store, probe: lat}, qo))
	if err != nil {
		b.Fatal(err)
	}
	stopSinks := sinks.Start(ctx)
	b.Cleanup(func() { stopSinks() }) //nolint:errcheck // a queue without a spool closes without error

	startSinkNode(b, &collector.Config{
		NodeName: "e2e-latency",
		Endpoints: []collector.EndpointConfig{
			{Name: "client", NetNS: client.NetNSName},
			{Name: "server", Namespace: "other", NetNS: server.NetNSName},
		},
	}, datapath.Config{IdleTimeout: latencyIdle, Logger: quiet}, &consumeProbe{next: sinks, probe: lat})

	// A bound socket that reads everything: no reply, no ICMP error.
	rx, err := server.ListenUDP(0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rx.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := rx.Read(buf); err != nil {
				return
			}
		}
	}()
	dst := netip.AddrPortFrom(server.IPv4, uint16(rx.LocalAddr().(*net.UDPAddr).Port))
	lat.port = dst.Port()

	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: "periscope", Username: "default"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	pctx, stopPoll := context.WithCancel(ctx)
	var polls sync.WaitGroup
	polls.Go(func() { lat.poll(pctx, b, conn) })
	b.Cleanup(func() { stopPoll(); polls.Wait() })

	for b.Loop() {
		sent := sendConnections(b, client, dst, latencyConnRate, latencyDuration)
		// A Start record reaches the sink within milliseconds of its packet;
		// every one the collector got must become queryable. (Fewer than two
		// per connection: a source port the kernel reuses within the idle
		// timeout continues the earlier flow.)
		time.Sleep(500 * time.Millisecond)
		deadline := time.Now().Add(latencySettleFor)
		for {
			consumed, acked, seen := lat.counts()
			if acked == consumed && seen == consumed {
				b.Logf("%d connections, %d Start records", sent, consumed)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d connections: %d Start records reached the sink, %d acknowledged, %d queryable after %s",
					sent, consumed, acked, seen, latencySettleFor)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopPoll()
	polls.Wait()
	lat.report(b)
}

// latencyProbe collects, per Start record of the benchmark's traffic, its
// kernel time and when it reached the sink, was acknowledged and was seen by
// the poller.
type latencyProbe struct {
	port uint16 // the traffic's destination port; set before traffic starts

	mu       sync.Mutex
	kernel   map[[16]byte]time.Time // the Start records' kernel times
	order    [][16]byte             // the Start records, as they reached the sink
	unseen   int                    // order[:unseen] have all been seen
	consumed []time.Duration        // kernel to Consume
	acked    map[[16]byte]time.Time // insert acknowledged
	seen     map[[16]byte]time.Time // first returned by a poll
	polls    int
	pollMax  time.Duration
}

// since is the kernel time from which a poll must look: that of the oldest
// record not seen yet (all seen: now), less a second, since time is stored
// in whole seconds. It keeps each poll's result small.
func (l *latencyProbe) since() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.unseen < len(l.order) {
		if _, ok := l.seen[l.order[l.unseen]]; !ok {
			return l.kernel[l.order[l.unseen]].Add(-time.Second)
		}
		l.unseen++
	}
	return time.Now().Add(-time.Second)
}

// isStart says whether f is a Start record of the benchmark's traffic.
func (l *latencyProbe) isStart(f *api.Flow) bool {
	return f.Event == api.EventStart && f.L4.Protocol == api.ProtoUDP && f.L4.DestinationPort == l.port
}

func (l *latencyProbe) counts() (consumed, acked, seen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.consumed), len(l.acked), len(l.seen)
}

// poll selects the Start rows' UUIDs every latencyPoll until ctx is done,
// noting when each was first returned.
func (l *latencyProbe) poll(ctx context.Context, b *testing.B, conn ch.Conn) {
	t := time.NewTicker(latencyPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		since := l.since()
		start := time.Now()
		rows, err := conn.Query(ctx, "SELECT uuid FROM flows WHERE time >= toDateTime(?) AND event = ? AND protocol = ? AND dst_port = ?",
			uint32(since.Unix()), uint8(api.EventStart), api.ProtoUDP, l.port)
		if err != nil {
			if ctx.Err() == nil {
				b.Errorf("poll: %v", err)
			}
			return
		}
		var ids [][16]byte
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				b.Errorf("poll: scan: %v", err)
				rows.Close()
				return
			}
			ids = append(ids, [16]byte([]byte(u)))
		}
		rows.Close()
		now := time.Now()
		l.mu.Lock()
		for _, id := range ids {
			if _, ok := l.seen[id]; !ok {
				l.seen[id] = now
			}
		}
		l.polls++
		l.pollMax = max(l.pollMax, now.Sub(start))
		l.mu.Unlock()
	}
}

func (l *latencyProbe) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var toSeen, toAck, ackToSeen []time.Duration
	for id, k := range l.kernel {
		s, ok := l.seen[id]
		if !ok {
			continue
		}
		toSeen = append(toSeen, s.Sub(k))
		if a, ok := l.acked[id]; ok {
			toAck = append(toAck, a.Sub(k))
			ackToSeen = append(ackToSeen, s.Sub(a))
		}
	}
	if len(toSeen) == 0 {
		b.Fatal("no Start record was seen in ClickHouse")
	}
	stats := func(name string, d []time.Duration) {
		slices.Sort(d)
		p := func(x float64) time.Duration { return d[int(x*float64(len(d)-1))] }
		b.ReportMetric(float64(p(0.5).Microseconds())/1000, name+"_p50_ms")
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, name+"_p99_ms")
		b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, name+"_max_ms")
		b.Logf("%-22s n=%d min %v p50 %v p99 %v max %v", name, len(d), d[0], p(0.5), p(0.99), d[len(d)-1])
	}
	stats("kernel_to_queryable", toSeen)
	stats("kernel_to_ack", toAck)
	stats("kernel_to_sink", slices.Clone(l.consumed))
	// How the acknowledgement relates to visibility: a poll sees a row at
	// most one poll (plus its duration) after the ack, and may see it just
	// before (the server commits, then answers).
	slices.Sort(ackToSeen)
	b.Logf("poll time minus ack time: min %v median %v max %v; %d polls, slowest %v",
		ackToSeen[0], ackToSeen[len(ackToSeen)/2], ackToSeen[len(ackToSeen)-1], l.polls, l.pollMax)
}

// consumeProbe is the collector's sink: it notes the Start records' kernel
// times and when they arrived, then hands every record to next.
type consumeProbe struct {
	next  collector.Sink
	probe *latencyProbe
}

func (c *consumeProbe) Consume(f *api.Flow) {
	if c.probe.isStart(f) {
		now := time.Now()
		c.probe.mu.Lock()
		c.probe.kernel[f.UUID] = f.Time
		c.probe.order = append(c.probe.order, f.UUID)
		c.probe.consumed = append(c.probe.consumed, now.Sub(f.Time))
		c.probe.mu.Unlock()
	}
	c.next.Consume(f)
}

// ackSink is the ClickHouse store, noting when each Start record's insert
// was acknowledged.
type ackSink struct {
	*clickhouse.Store
	probe *latencyProbe
}

func (a *ackSink) Write(ctx context.Context, batch []api.Flow) error {
	if err := a.Store.Write(ctx, batch); err != nil {
		return err
	}
	now := time.Now()
	a.probe.mu.Lock()
	for i := range batch {
		if a.probe.isStart(&batch[i]) {
			a.probe.acked[batch[i].UUID] = now
		}
	}
	a.probe.mu.Unlock()
	return nil
}

// sendConnections opens rate new UDP connections per second from client to
// dst for d, each sending one datagram, and returns how many it opened.
func sendConnections(b *testing.B, client *netlab.Pod, dst netip.AddrPort, rate int, d time.Duration) int {
	start := time.Now()
	n := 0
	for {
		el := time.Since(start)
		if el >= d {
			return n
		}
		for target := int(el.Seconds() * float64(rate)); n < target; n++ {
			c, err := client.DialUDP(context.Background(), dst)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write([]byte("latency")); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		time.Sleep(time.Millisecond)
	}
}
