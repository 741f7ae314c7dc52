package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// The churn comparison (issue 16): this tree's collector against a
// baseline commit's, in one run on one machine, each as a separate
// process measured from outside.
//
//	PERISCOPE_BASELINE=<commit> go test -run '^$' -bench BenchmarkChurnVsBaseline -benchtime 1x -timeout 60m ./cmd/periscope/
//
// Knobs (environment): PERISCOPE_CHURN_RATE (new connections/s, 2000),
// PERISCOPE_CHURN_SECONDS (30), PERISCOPE_CHURN_ROUNDS (3 per build),
// PERISCOPE_CHURN_ONLY (skip throughput and the TC program's cost),
// PERISCOPE_CHURN_PERF (a directory: perf record each collector),
// PERISCOPE_CHURN_ARGS (more flags for this tree's collector, to compare
// settings).

// churnRound is one build's measurement of one churn round.
type churnRound struct {
	build       string
	made        uint64
	failed      uint64
	cpu         time.Duration // collector CPU from the churn's start until it settled
	records     uint64        // records of the lab's pods in ClickHouse
	byEvent     string        // the same by event kind
	seen        uint64        // every record the collector's ring got meanwhile
	maxFill     float64       // largest flow-table fill seen (this build's status only)
	mapMemory   uint64
	mapsByName  map[string]uint64
	eventsEmit  uint64 // kernel events emitted meanwhile
	sinkDropped string
}

func (r churnRound) cpuPerConn() time.Duration { return r.cpu / time.Duration(max(r.made, 1)) }
func (r churnRound) recordsPerConn() float64 {
	return float64(r.records) / float64(max(r.made, 1))
}

func BenchmarkChurnVsBaseline(b *testing.B) {
	labtest.RequireRoot(b)
	baseRev := os.Getenv("PERISCOPE_BASELINE")
	if baseRev == "" {
		b.Skip("set PERISCOPE_BASELINE to the commit to compare against (e.g. main)")
	}
	rate := envInt(b, "PERISCOPE_CHURN_RATE", 2000)
	secs := envInt(b, "PERISCOPE_CHURN_SECONDS", 30)
	rounds := envInt(b, "PERISCOPE_CHURN_ROUNDS", 3)

	dir := b.TempDir()
	builds := []churnBuild{buildBase(b, dir, baseRev), buildThis(b, dir)}
	b.Logf("baseline %s; rate %d connections/s for %d s, %d rounds per build", builds[0].rev, rate, secs, rounds)

	lab := labtest.NewLab(b)
	client, err := lab.AddPod(netlab.PodSpec{Name: "client"})
	if err != nil {
		b.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "server"})
	if err != nil {
		b.Fatal(err)
	}
	if err := tuneChurnClient(client); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "endpoints.yaml")
	yaml := fmt.Sprintf("node_name: churn\nendpoints:\n  - name: client\n    labels: {app: client}\n    netns: %s\n"+
		"  - name: server\n    labels: {app: server}\n    netns: %s\n", client.NetNSName, server.NetNSName)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	const port = 7070
	srv, err := startChurnServer(server, port)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ch := chtest.Start(b)

	for b.Loop() {
		var results []churnRound
		for r := range rounds {
			order := builds
			if r%2 == 1 {
				order = []churnBuild{builds[1], builds[0]}
			}
			for _, bd := range order {
				db := fmt.Sprintf("churn_%s_%d", bd.name, r)
				res := churnRoundOf(b, bd, cfg, ch, db, client, netip.AddrPortFrom(server.IPv4, port), rate, secs)
				b.Logf("round %d %-4s: %d connections (%d failed), collector %.2f CPU-s = %.1f µs/connection, %.2f records/connection (%s), ring got %d records, %d kernel events, flow-table fill ≤ %.1f%%, sink dropped %s",
					r, bd.name, res.made, res.failed, res.cpu.Seconds(), float64(res.cpuPerConn().Nanoseconds())/1e3,
					res.recordsPerConn(), res.byEvent, res.seen, res.eventsEmit, res.maxFill*100, res.sinkDropped)
				results = append(results, res)
			}
		}
		reportChurn(b, results)
		reportMaps(b, results)
		if os.Getenv("PERISCOPE_CHURN_ONLY") != "" {
			continue
		}
		throughputVs(b, builds, cfg, client, server, rounds)
		tcCostVs(b, builds, rounds)
	}
}

// churnRoundOf runs one build's collector through one churn round.
func churnRoundOf(b *testing.B, bd churnBuild, cfg string, ch *chtest.Server, db string,
	client *netlab.Pod, server netip.AddrPort, rate, secs int) churnRound {
	b.Helper()
	args := []string{"--config", cfg, "--clickhouse=" + ch.DSN(db), "--clickhouse-spool-dir", b.TempDir(), "--metrics"}
	if extra := os.Getenv("PERISCOPE_CHURN_ARGS"); extra != "" && bd.name == "this" {
		args = append(args, strings.Fields(extra)...)
	}
	p := startCollectorProc(b, bd.collector, args...)
	defer p.stop()
	waitAttached(b, p, 2)
	res := churnRound{build: bd.name}
	res.mapMemory, res.mapsByName = p.mapMemory()
	st0 := p.status()
	cpu0 := p.cpu()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fill := make(chan float64, 1)
	go func() { fill <- sampleFill(ctx, p) }()
	stopPerf := perfRecord(b, p, db)
	made, err := runChurn(ctx, client, server, rate, time.Duration(secs)*time.Second)
	stopPerf()
	if err != nil {
		b.Fatalf("churn: %v", err)
	}
	res.made, res.failed = made.Made, made.Failed
	settle(b, p)
	res.cpu = p.cpu() - cpu0
	cancel()
	res.maxFill = <-fill
	st1 := p.status()
	res.seen = num(st1, "flows_seen") - num(st0, "flows_seen")
	res.eventsEmit = num(st1, "events_emitted") - num(st0, "events_emitted")
	res.records, res.byEvent = labRecords(b, ch, db)
	res.sinkDropped = scrapeSeries(b, p, `periscope_sink_dropped_total{sink="clickhouse"}`)
	return res
}

// perfRecord, when PERISCOPE_CHURN_PERF names a directory, records the
// collector's call graphs with perf until the returned function is called.
func perfRecord(b *testing.B, p *collectorProc, name string) func() {
	dir := os.Getenv("PERISCOPE_CHURN_PERF")
	if dir == "" {
		return func() {}
	}
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(p.cmd.Process.Pid),
		"-o", filepath.Join(dir, name+".perf.data"))
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf record: %v", err)
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}
}

// waitAttached waits until the collector reports n attached interfaces.
func waitAttached(b *testing.B, p *collectorProc, n int) {
	b.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if ifs, _ := p.status()["attached_interfaces"].([]any); len(ifs) >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("collector attached to fewer than %d interfaces; output:\n%s", n, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle waits until the collector's ring has had no new record for 2 s
// (every connection ended and swept), at most 30 s.
func settle(b *testing.B, p *collectorProc) {
	b.Helper()
	last, since := num(p.status(), "flows_seen"), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		if n := num(p.status(), "flows_seen"); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 2*time.Second {
			return
		}
	}
}

// sampleFill polls the collector's status for its flow table's fill (a
// build that reports it) until ctx ends, and returns the largest seen.
func sampleFill(ctx context.Context, p *collectorProc) float64 {
	var peak float64
	for {
		select {
		case <-ctx.Done():
			return peak
		case <-time.After(200 * time.Millisecond):
		}
		st, err := statusOf(p.base)
		if err != nil {
			continue
		}
		if ft, ok := st["flow_table"].(map[string]any); ok {
			if c, _ := ft["capacity"].(float64); c > 0 {
				e, _ := ft["entries"].(float64)
				peak = max(peak, e/c)
			}
		}
	}
}

// labRecords counts the records ClickHouse holds of the lab's pods, in all
// and by event kind.
func labRecords(b *testing.B, ch *chtest.Server, db string) (uint64, string) {
	b.Helper()
	where := fmt.Sprintf("FROM `%s`.flows WHERE src_pod IN ('client', 'server') OR dst_pod IN ('client', 'server')", db)
	var total uint64
	for prev := uint64(1 << 63); ; prev = total {
		total, _ = strconv.ParseUint(queryRetrying(b, ch, "SELECT count() "+where), 10, 64)
		if total == prev {
			break
		}
		time.Sleep(1500 * time.Millisecond) // the queue flushes every second
	}
	kinds := strings.Fields(queryRetrying(b, ch, "SELECT concat(toString(event), ':', toString(count())) "+where+" GROUP BY event ORDER BY event"))
	names := map[string]string{"1": "start", "2": "state", "3": "periodic", "4": "end", "5": "sock"}
	for i, k := range kinds {
		ev, n, _ := strings.Cut(k, ":")
		kinds[i] = names[ev] + " " + n
	}
	return total, strings.Join(kinds, ", ")
}

// queryRetrying runs a query, again after a failure (a server busy with
// the inserts of a loaded machine refuses a connection now and then).
func queryRetrying(b *testing.B, ch *chtest.Server, q string) string {
	b.Helper()
	var out []byte
	var err error
	for range 5 {
		if out, err = ch.Client(context.Background(), nil, "--query", q); err == nil {
			return strings.TrimSpace(string(out))
		}
		time.Sleep(time.Second)
	}
	b.Fatalf("clickhouse-client %q: %v\n%s", q, err, out)
	return ""
}

// scrapeSeries returns the value of one series of the collector's /metrics.
func scrapeSeries(b *testing.B, p *collectorProc, series string) string {
	b.Helper()
	body, err := httpGet(p.base + "/metrics")
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "0"
}

// reportChurn logs medians and spreads per build and reports the ratios.
func reportChurn(b *testing.B, results []churnRound) {
	per := func(build string, f func(churnRound) float64) []float64 {
		var xs []float64
		for _, r := range results {
			if r.build == build {
				xs = append(xs, f(r))
			}
		}
		slices.Sort(xs)
		return xs
	}
	cpu := func(r churnRound) float64 { return float64(r.cpuPerConn().Nanoseconds()) / 1e3 }
	recs := func(r churnRound) float64 { return r.recordsPerConn() }
	cpuS := func(r churnRound) float64 { return r.cpu.Seconds() }
	for _, build := range []string{"base", "this"} {
		b.Logf("%-4s: µs CPU/connection median %.1f (%s), CPU-s median %.2f (%s), records/connection median %.2f (%s)", build,
			median(per(build, cpu)), spread(per(build, cpu)), median(per(build, cpuS)), spread(per(build, cpuS)),
			median(per(build, recs)), spread(per(build, recs)))
	}
	cpuRatio := median(per("this", cpu)) / median(per("base", cpu))
	b.Logf("CPU per connection, this/base: %.2f (goal ≤ 0.5); records per connection this: %.2f (goal ≤ 4)",
		cpuRatio, median(per("this", recs)))
	b.ReportMetric(cpuRatio, "cpu-per-conn-ratio")
	b.ReportMetric(median(per("this", recs)), "records/conn")
	b.ReportMetric(median(per("base", recs)), "base-records/conn")
}

// reportMaps logs each build's BPF map memory at its defaults.
func reportMaps(b *testing.B, results []churnRound) {
	mem := map[string]uint64{}
	for _, r := range results {
		if _, ok := mem[r.build]; ok {
			continue
		}
		mem[r.build] = r.mapMemory
		b.Logf("%-4s: BPF maps %.1f MiB: %s", r.build, float64(r.mapMemory)/(1<<20), describeMaps(r.mapsByName))
	}
	ratio := float64(mem["this"]) / float64(mem["base"])
	b.Logf("BPF map memory at defaults, this/base: %.3f (goal ≤ 0.25)", ratio)
	b.ReportMetric(ratio, "map-memory-ratio")
}

// throughputVs measures iperf3 between the pods with each build's collector
// attached (defaults, no sinks), interleaved.
func throughputVs(b *testing.B, builds []churnBuild, cfg string, client, server *netlab.Pod, rounds int) {
	got := map[string][]float64{}
	for r := range rounds {
		for _, bd := range builds {
			p := startCollectorProc(b, bd.collector, "--config", cfg)
			waitAttached(b, p, 2)
			bps, err := netlab.Throughput(context.Background(), client, server, netlab.IperfOptions{Duration: 3 * time.Second})
			p.stop()
			if err != nil {
				b.Fatalf("iperf3 with %s: %v", bd.name, err)
			}
			b.Logf("throughput round %d %-4s: %.2f Gbit/s", r, bd.name, bps/1e9)
			got[bd.name] = append(got[bd.name], bps)
		}
	}
	ratio := mean(got["this"]) / mean(got["base"])
	b.Logf("TCP throughput this/base: %.3f (goal ≥ 0.95)", ratio)
	b.ReportMetric(ratio, "throughput-ratio")
}

var (
	flowNs = regexp.MustCompile(`([0-9.]+) flow-ns/pkt`)
	passNs = regexp.MustCompile(`([0-9.]+) passthrough-ns/pkt`)
)

// tcCostVs runs each build's BenchmarkTCProgram, interleaved, and compares
// the flow program's time per packet.
func tcCostVs(b *testing.B, builds []churnBuild, rounds int) {
	got := map[string][]float64{}
	for r := range rounds {
		for _, bd := range builds {
			out := runOut(b, filepath.Dir(bd.datapathTest), bd.datapathTest, "-test.run", "^$",
				"-test.bench", "^BenchmarkTCProgram$", "-test.benchtime", "200000x", "-test.count", "1")
			fm, pm := flowNs.FindStringSubmatch(out), passNs.FindStringSubmatch(out)
			if fm == nil || pm == nil {
				b.Fatalf("no result of BenchmarkTCProgram in:\n%s", out)
			}
			flow, _ := strconv.ParseFloat(fm[1], 64)
			pass, _ := strconv.ParseFloat(pm[1], 64)
			b.Logf("TC program round %d %-4s: %.0f ns/packet (pass-through %.0f, extra %.0f)", r, bd.name, flow, pass, flow-pass)
			got[bd.name] = append(got[bd.name], flow)
		}
	}
	ratio := median(got["base"]) / median(got["this"])
	b.Logf("TC per-packet cost base/this: %.3f (goal ≥ 0.95: this build no slower)", ratio)
	b.ReportMetric(ratio, "tc-cost-ratio")
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func num(st map[string]any, key string) uint64 {
	v, _ := st[key].(float64)
	return uint64(v)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}

// spread is "min–max" of xs.
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f–%.2f", slices.Min(xs), slices.Max(xs))
}
