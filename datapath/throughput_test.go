package datapath_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// throughputRound is how long each iperf3 measurement lasts.
const throughputRound = 3 * time.Second

// BenchmarkTCPThroughput measures iperf3 TCP throughput between two pods
// without and with the datapath attached to both host veths (and its ring
// drained by Run), interleaved without, with, without, with so that drift of
// a shared machine hits both sides. It reports both rates and their ratio
// (goal: at least 0.95). Each benchmark iteration is the whole comparison;
// run it with -benchtime=1x.
func BenchmarkTCPThroughput(b *testing.B) {
	labtest.RequireRoot(b)
	lab := labtest.NewLab(b)
	client, err := lab.AddPod(netlab.PodSpec{Name: "client"})
	if err != nil {
		b.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "server"})
	if err != nil {
		b.Fatal(err)
	}
	dp, err := datapath.Load(datapath.Config{
		PinPath: netlab.PinPath(b, "bench"),
	})
	if err != nil {
		b.Fatalf("load datapath: %v", err)
	}
	b.Cleanup(func() {
		if err := dp.Close(); err != nil {
			b.Errorf("close datapath: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := dp.Run(ctx, func(*api.Flow) {}); err != nil {
			b.Errorf("datapath Run: %v", err)
		}
	})
	b.Cleanup(func() { cancel(); wg.Wait() })

	veths := []string{client.HostVeth.Name, server.HostVeth.Name}
	var without, with []float64
	for b.Loop() {
		for _, attached := range []bool{false, true, false, true} {
			for _, v := range veths {
				var err error
				if attached {
					err = dp.AttachInterface(v)
				} else if len(dp.Interfaces()) > 0 {
					err = dp.DetachInterface(v)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			bps, err := netlab.Throughput(ctx, client, server, netlab.IperfOptions{Duration: throughputRound})
			if err != nil {
				b.Fatalf("iperf3 (datapath attached: %v): %v", attached, err)
			}
			b.Logf("datapath attached: %-5v %.2f Gbit/s", attached, bps/1e9)
			if attached {
				with = append(with, bps)
			} else {
				without = append(without, bps)
			}
		}
	}
	if s := dp.Stats(); s.EventsEmitted == 0 {
		b.Errorf("the datapath saw no traffic while attached: %+v", s)
	}
	mean := func(xs []float64) float64 {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	ratio := mean(with) / mean(without)
	b.ReportMetric(mean(without), "bits/s-without")
	b.ReportMetric(mean(with), "bits/s-with")
	b.ReportMetric(ratio, "ratio")
	if ratio < 0.95 {
		b.Logf("throughput with the datapath is %.1f%% of without, below the 0.95 goal", ratio*100)
	}
}
