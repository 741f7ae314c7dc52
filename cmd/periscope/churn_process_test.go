package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/datapath/netlab"
)

// collectorProc is a `periscope collector` process a benchmark runs and
// measures from outside: CPU time as the kernel accounts it, its BPF maps'
// memory, its HTTP API.
type collectorProc struct {
	tb     testing.TB
	cmd    *exec.Cmd
	base   string // http://host:port
	pin    string
	out    *periscopetest.Output
	exited chan struct{}
}

// startCollectorProc runs bin collector with args plus a listen address,
// a pin path, and state files of its own, and waits until it answers.
func startCollectorProc(tb testing.TB, bin string, args ...string) *collectorProc {
	tb.Helper()
	dir := tb.TempDir()
	listen := periscopetest.FreeAddr(tb)
	p := &collectorProc{
		tb:     tb,
		base:   "http://" + listen,
		pin:    netlab.PinPath(tb, "churn"),
		out:    &periscopetest.Output{},
		exited: make(chan struct{}),
	}
	args = append([]string{"collector", "--listen", listen, "--bpf-pin-path", p.pin,
		"--hubble-listen", periscopetest.FreeAddr(tb), "--identity-state", filepath.Join(dir, "identities.json"),
		"--policy-dir", filepath.Join(dir, "policies")}, args...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() { p.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			tb.Fatalf("collector %s exited early; output:\n%s", bin, p.out.String())
		default:
		}
		if resp, err := http.Get(p.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("collector %s not healthy after 30s; output:\n%s", bin, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpu is the process's user + system CPU time so far, all threads, as
// getrusage(RUSAGE_SELF) would report it inside the process.
func (p *collectorProc) cpu() time.Duration {
	p.tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		p.tb.Fatalf("read collector's stat: %v", err)
	}
	// Fields after the command name (which may hold spaces), from field 3.
	rest := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseUint(rest[11], 10, 64)
	stime, _ := strconv.ParseUint(rest[12], 10, 64)
	const ticksPerSecond = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// status returns GET /api/v1/status as generic JSON.
func (p *collectorProc) status() map[string]any {
	p.tb.Helper()
	resp, err := http.Get(p.base + "/api/v1/status")
	if err != nil {
		p.tb.Fatalf("GET status: %v", err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		p.tb.Fatalf("decode status: %v", err)
	}
	return st
}

// mapMemory sums the kernel's memlock accounting of every BPF map the
// process holds (from /proc/PID/fdinfo, the same figure bpftool shows), and
// gives each map's by name.
func (p *collectorProc) mapMemory() (total uint64, byName map[string]uint64) {
	p.tb.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", p.cmd.Process.Pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.tb.Fatalf("read %s: %v", dir, err)
	}
	byName = map[string]uint64{}
	seen := map[uint64]bool{}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var id, memlock uint64
		isMap := false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			switch k {
			case "map_type":
				isMap = true
			case "map_id":
				id = n
			case "memlock":
				memlock = n
			}
		}
		f.Close()
		if !isMap || seen[id] {
			continue
		}
		seen[id] = true
		total += memlock
		name := fmt.Sprintf("id%d", id)
		if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
			if info, err := m.Info(); err == nil && info.Name != "" {
				name = info.Name
			}
			m.Close()
		}
		byName[name] += memlock
	}
	return total, byName
}

// describeMaps lists maps by memory, largest first.
func describeMaps(byName map[string]uint64) string {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byName[names[i]] > byName[names[j]] })
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %.2f MiB, ", n, float64(byName[n])/(1<<20))
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// stop sends SIGTERM and waits for the process (killing it after 20 s); it
// returns the CPU time of its whole life (wait4's rusage). Calling it again
// returns 0.
func (p *collectorProc) stop() time.Duration {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.tb.Errorf("collector did not stop on SIGTERM; output:\n%s", p.out.String())
		}
	}
	_ = os.RemoveAll(p.pin)
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// httpGet returns the body of a GET.
func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b.String(), nil
}

// statusOf returns GET /api/v1/status of the collector at base.
func statusOf(base string) (map[string]any, error) {
	body, err := httpGet(base + "/api/v1/status")
	if err != nil {
		return nil, err
	}
	var st map[string]any
	return st, json.Unmarshal([]byte(body), &st)
}
