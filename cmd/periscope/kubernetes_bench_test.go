package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/discovery/kubernetes/kubetest"
)

// benchPods is how many pods BenchmarkCollectorAtManyPods runs the
// collector with ($PERISCOPE_BENCH_PODS, default 500).
func benchPods(b *testing.B) int {
	if s := os.Getenv("PERISCOPE_BENCH_PODS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("PERISCOPE_BENCH_PODS=%q: want a positive number", s)
		}
		return n
	}
	return 500
}

// BenchmarkCollectorAtManyPods measures the collector binary (--kubeconfig,
// a real API server) idle, then with 500 pods of its node (netlab pods,
// 250 per lab bridge: network namespaces, veths, status IPs set through
// the API) all in force: its CPU (utime+stime over a 20 s window) and
// memory (VmRSS) at each, and their ratios. It reports cpu-idle-%,
// cpu-pods-%, rss-idle-MiB, rss-pods-MiB, cpu-ratio, rss-ratio and the
// time until every pod was an endpoint.
func BenchmarkCollectorAtManyPods(b *testing.B) {
	labtest.RequireRoot(b)
	pods := benchPods(b)
	srv := kubetest.New(b)
	cs, err := kubernetes.NewForConfig(srv.Config)
	if err != nil {
		b.Fatal(err)
	}
	var lab *netlab.Lab
	var netPods []*netlab.Pod
	for i := range pods {
		if i%250 == 0 {
			lab = labtest.NewLab(b)
		}
		p, err := lab.AddPod(netlab.PodSpec{Name: fmt.Sprintf("p%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		netPods = append(netPods, p)
	}
	bin := periscopetest.Build(b)
	sockDir, err := os.MkdirTemp("", "psc-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	pin := netlab.PinPath(b, "bench")
	listen := periscopetest.FreeAddr(b)
	cmd := exec.Command(bin, append([]string{"collector", "--kubeconfig", srv.Kubeconfig, "--node-name", "node-b",
		"--listen", listen, "--bpf-pin-path", pin, "--api-socket", filepath.Join(sockDir, "api.sock"),
		"--hubble-listen", "", "--ui=false", "--sock-events=false"}, periscopetest.StateFlags(b)...)...)
	var out periscopetest.Output
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(pin)
		if b.Failed() {
			b.Logf("collector output:\n%s", out.String())
		}
	}()
	base := "http://" + listen
	periscopetest.WaitHealthy(b, "the collector", base, exited, &out)
	pid := cmd.Process.Pid
	const window = 20 * time.Second

	time.Sleep(5 * time.Second) // past its start
	idleCPU, idleRSS := sampleProcess(b, pid, window)

	ctx := b.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}},
		metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < pods; i += 8 {
				p := netPods[i]
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("pod-%d", i),
						Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%50)}},
					Spec: corev1.PodSpec{NodeName: "node-b", ServiceAccountName: "default",
						Containers: []corev1.Container{{Name: "main", Image: "periscope:dev"}}},
				}
				pod, err := cs.CoreV1().Pods("bench").Create(ctx, pod, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				pod.Status.Phase = corev1.PodRunning
				pod.Status.PodIPs = []corev1.PodIP{{IP: p.IPv4.String()}, {IP: p.IPv6.String()}}
				if _, err := cs.CoreV1().Pods("bench").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var eps []collector.EndpointStatus
		getInto(b, base+collector.EndpointsPath, &eps)
		if len(eps) == pods {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pods are endpoints after 5 minutes", len(eps), pods)
		}
		time.Sleep(200 * time.Millisecond)
	}
	allIn := time.Since(start)
	time.Sleep(5 * time.Second)
	podsCPU, podsRSS := sampleProcess(b, pid, window)

	b.ReportMetric(idleCPU, "cpu-idle-%")
	b.ReportMetric(podsCPU, "cpu-pods-%")
	b.ReportMetric(idleRSS, "rss-idle-MiB")
	b.ReportMetric(podsRSS, "rss-pods-MiB")
	b.ReportMetric(podsCPU/max(idleCPU, 0.01), "cpu-ratio")
	b.ReportMetric(podsRSS/idleRSS, "rss-ratio")
	b.ReportMetric(allIn.Seconds(), "s-all-in-force")
	b.Logf("%d pods: idle %.2f%% CPU, %.1f MiB; with the pods %.2f%% CPU, %.1f MiB; all %d in force %v after their creation began",
		pods, idleCPU, idleRSS, podsCPU, podsRSS, pods, allIn.Round(time.Millisecond))
}

// sampleProcess measures pid over window: its CPU use (percent of one
// core) and, at the end, its resident memory (MiB).
func sampleProcess(tb testing.TB, pid int, window time.Duration) (cpuPercent, rssMiB float64) {
	tb.Helper()
	t0, c0 := time.Now(), cpuTicks(tb, pid)
	time.Sleep(window)
	c1, elapsed := cpuTicks(tb, pid), time.Since(t0)
	const hz = 100 // USER_HZ
	cpuPercent = float64(c1-c0) / hz / elapsed.Seconds() * 100
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rssMiB = kb / 1024
		}
	}
	return cpuPercent, rssMiB
}

// cpuTicks is pid's utime+stime in clock ticks.
func cpuTicks(tb testing.TB, pid int) uint64 {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime 14, stime 15.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return utime + stime
}
