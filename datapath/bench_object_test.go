package datapath

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// Environment of BenchmarkTCProgramVsObject.
const (
	tcObjectEnv          = "PERISCOPE_TC_OBJECT"            // the other build's tcflow_bpfel.o
	tcObjectRoundsEnv    = "PERISCOPE_TC_ROUNDS"            // rounds of each program, default 21
	tcObjectPacketsEnv   = "PERISCOPE_TC_PACKETS"           // packets of a round, default 1,000,000
	tcObjectFlowTableEnv = "PERISCOPE_TC_OBJECT_FLOW_TABLE" // the other's flow-table size, default this build's
)

// BenchmarkTCProgramVsObject compares this tree's flow program with another
// build's (PERISCOPE_TC_OBJECT, e.g. the baseline commit's
// datapath/tcflow_bpfel.o) on the packet of BenchmarkTCProgram: both loaded
// the same way (no pinning, the same map sizes and report interval unless
// PERISCOPE_TC_OBJECT_FLOW_TABLE sizes the other's flow table), in one
// process, their BPF_PROG_TEST_RUN rounds of b.N packets (at least 200,000)
// alternating (this, other; other, this; ...) so that both see the same
// machine. It reports the medians and the other/this ratio of each round
// pair (median, quartiles, range); -v logs every round. Pin it to one CPU
// (taskset -c 1).
func BenchmarkTCProgramVsObject(b *testing.B) {
	path := os.Getenv(tcObjectEnv)
	if path == "" {
		b.Skip(tcObjectEnv + " names the object to compare with")
	}
	labtest.RequireRoot(b)
	rounds := envInt(b, tcObjectRoundsEnv, 21)
	thisSpec, err := loadTcFlow()
	if err != nil {
		b.Fatal(err)
	}
	otherSpec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		b.Fatalf("read %s: %v", path, err)
	}
	cfg, err := Config{}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	progs := [2]*ebpf.Program{
		loadFlowIngress(b, thisSpec, cfg.FlowTableSize, cfg.RingBufferSize),
		loadFlowIngress(b, otherSpec, envInt(b, tcObjectFlowTableEnv, cfg.FlowTableSize), cfg.RingBufferSize),
	}
	syn := v4("198.18.0.2", "198.18.0.1", 6, tcpHeader(40000, 80, 0x02))
	ack := v4("198.18.0.2", "198.18.0.1", 6, append(tcpHeader(40000, 80, 0x10), make([]byte, 100)...))
	for _, p := range progs {
		if _, err := runPacket(b, p, syn); err != nil {
			b.Fatal(err)
		}
	}
	n := envInt(b, tcObjectPacketsEnv, 1000000)
	var ns [2][]float64
	var ratios []float64
	b.ResetTimer()
	for r := range rounds * b.N {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		var round [2]float64
		for _, i := range order {
			_, d, err := progs[i].Benchmark(ack, n, nil)
			if err != nil {
				b.Fatalf("round %d: %v", r, err)
			}
			round[i] = float64(d.Nanoseconds())
			ns[i] = append(ns[i], round[i])
		}
		ratios = append(ratios, round[1]/round[0])
		b.Logf("round %d: this %.1f ns/pkt, other %.1f ns/pkt, other/this %.3f", r+1, round[0], round[1], round[1]/round[0])
	}
	b.StopTimer()
	q := quartiles(ratios)
	b.ReportMetric(quartiles(ns[0])[1], "this-ns/pkt")
	b.ReportMetric(quartiles(ns[1])[1], "other-ns/pkt")
	b.ReportMetric(q[1], "other/this")
	b.ReportMetric(q[0], "other/this-q1")
	b.ReportMetric(q[2], "other/this-q3")
	b.ReportMetric(slices.Min(ratios), "other/this-min")
	b.ReportMetric(slices.Max(ratios), "other/this-max")
}

// loadFlowIngress loads a flow object's collection unpinned, with the given
// flow-table and ring sizes and an hour's report interval, and returns its
// flow_ingress program.
func loadFlowIngress(b *testing.B, spec *ebpf.CollectionSpec, flowTable, ring int) *ebpf.Program {
	b.Helper()
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	spec.Maps[tcFlowMapFlows].MaxEntries = uint32(flowTable)
	spec.Maps[tcFlowMapEvents].MaxEntries = uint32(ring)
	if v, ok := spec.Variables[tcFlowVarReportIntervalNs]; ok {
		if err := v.Set(uint64(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		b.Fatalf("load flow object: %v", err)
	}
	b.Cleanup(coll.Close)
	p, ok := coll.Programs["flow_ingress"]
	if !ok {
		b.Fatal("no flow_ingress in the object")
	}
	return p
}

// envInt reads a positive integer from the environment, def when unset.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatal(fmt.Errorf("%s=%q: want a positive number", name, s))
	}
	return n
}

// quartiles returns the first quartile, the median and the third quartile
// of xs (nearest rank).
func quartiles(xs []float64) [3]float64 {
	s := slices.Sorted(slices.Values(xs))
	at := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return [3]float64{at(0.25), s[len(s)/2], at(0.75)}
}
