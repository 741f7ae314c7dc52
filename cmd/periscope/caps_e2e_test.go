package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestCollectorRunsWithOnlyBPFNetAdminPerfmon runs the built binary as root
// with a bounding set (hence effective set) of only CAP_BPF, CAP_NET_ADMIN
// and CAP_PERFMON: it must load, attach, serve flows of real traffic and
// clean its pins on SIGTERM. Without CAP_BPF it must refuse clearly.
// bpffs and tracefs are mounted beforehand: mounting them is the only thing
// that would need CAP_SYS_ADMIN.
func TestCollectorRunsWithOnlyBPFNetAdminPerfmon(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := exec.LookPath("capsh"); err != nil {
		labtest.SkipOrFail(t, "capsh (libcap2-bin) not installed")
	}
	for _, m := range []struct {
		dir, fstype string
		magic       int64
	}{{"/sys/fs/bpf", "bpf", unix.BPF_FS_MAGIC}, {"/sys/kernel/tracing", "tracefs", unix.TRACEFS_MAGIC}} {
		var st unix.Statfs_t
		if err := unix.Statfs(m.dir, &st); err == nil && int64(st.Type) == m.magic {
			continue
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil {
			t.Fatalf("mount %s at %s: %v", m.fstype, m.dir, err)
		}
	}

	dir := t.TempDir()
	bin := periscopetest.Build(t)

	keep := []int{capNetAdmin, capPerfmon, capBPF}
	drop := dropAllBut(t, keep...)
	var wantEff uint64
	for _, c := range keep {
		wantEff |= 1 << c
	}
	out, err := exec.Command("capsh", "--drop="+drop, "--", "-c", "grep CapEff /proc/self/status").CombinedOutput()
	if err != nil {
		t.Fatalf("capsh: %v: %s", err, out)
	}
	if got := capEff(t, string(out)); got != wantEff {
		t.Fatalf("CapEff under capsh %#016x, want exactly CAP_NET_ADMIN|CAP_PERFMON|CAP_BPF %#016x", got, wantEff)
	}

	lab := labtest.NewLab(t)
	web, err := lab.AddPod(netlab.PodSpec{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := lab.AddPod(netlab.PodSpec{Name: "peer"})
	if err != nil {
		t.Fatal(err)
	}
	byIface := filepath.Join(dir, "by-interface.yaml")
	yaml := fmt.Sprintf("node_name: caps\nendpoints:\n  - name: web\n    namespace: shop\n    labels: {app: web}\n    interface: %s\n    ips: [%s, %s]\n",
		web.HostVeth.Name, web.IPv4, web.IPv6)
	if err := os.WriteFile(byIface, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	byNetNS := filepath.Join(dir, "by-netns.yaml")
	yaml = fmt.Sprintf("node_name: caps\nendpoints:\n  - name: web\n    namespace: shop\n    labels: {app: web}\n    netns: %s\n", web.NetNSName)
	if err := os.WriteFile(byNetNS, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := byIface

	// Resolving an endpoint declared by netns enters the namespace (setns),
	// which the kernel allows only with CAP_SYS_ADMIN: the three documented
	// capabilities must be enough for either kind of declaration.
	for _, c := range []struct{ name, cfg string }{
		{"endpoint declared by interface and IPs", byIface},
		{"endpoint declared by netns", byNetNS},
	} {
		t.Run("runs with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON only: "+c.name, func(t *testing.T) {
			runConfined(t, bin, c.cfg, drop, wantEff, web, peer)
		})
	}

	t.Run("refuses clearly without CAP_BPF", func(t *testing.T) {
		pin := netlab.PinPath(t, "caps")
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "capsh", "--drop="+dropAllBut(t, capNetAdmin, capPerfmon), "--", "-c",
			fmt.Sprintf("exec %s collector --config %s --listen %s --bpf-pin-path %s %s", bin, cfg, periscopetest.FreeAddr(t), pin, strings.Join(periscopetest.StateFlags(t), " ")))
		out, err := cmd.CombinedOutput()
		defer os.RemoveAll(pin)
		if err == nil || ctx.Err() != nil {
			t.Fatalf("collector without CAP_BPF: err %v (ctx %v), want a prompt failure; output:\n%s", err, ctx.Err(), out)
		}
		if !strings.Contains(string(out), "CAP_BPF") {
			t.Errorf("error does not name CAP_BPF:\n%s", out)
		}
		if _, err := os.Stat(pin); !os.IsNotExist(err) {
			t.Errorf("failed collector left %s (stat: %v)", pin, err)
		}
	})
}

// runConfined runs the collector under capsh with only the capabilities
// left by drop, checks its capabilities, that it reports real traffic to web,
// and that SIGTERM stops it cleanly with its pins removed.
func runConfined(t *testing.T, bin, cfg, drop string, wantEff uint64, web, peer *netlab.Pod) {
	pin := netlab.PinPath(t, "caps")
	listen := periscopetest.FreeAddr(t)
	cmd := exec.Command("capsh", "--drop="+drop, "--", "-c",
		fmt.Sprintf("exec %s collector --config %s --listen %s --bpf-pin-path %s --idle-timeout 1s --api-socket %s %s",
			bin, cfg, listen, pin, filepath.Join(t.TempDir(), "collector.sock"), strings.Join(periscopetest.StateFlags(t), " ")))
	var stderr periscopetest.Output
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(pin)
	})
	base := "http://" + listen
	periscopetest.WaitHealthy(t, "the collector", base, exited, &stderr)

	// The running collector (capsh and bash exec'd into it) holds exactly the three.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Name:\tperiscope") {
		t.Errorf("pid %d is not periscope: %s", cmd.Process.Pid, status)
	} else if got := capEff(t, string(status)); got != wantEff {
		t.Errorf("collector's CapEff %#016x, want %#016x", got, wantEff)
	}

	if n, err := peer.Ping(t.Context(), web.IPv4, 3); err != nil || n != 3 {
		t.Fatalf("ping: %d replies, %v", n, err)
	}
	var flows []api.Flow
	deadline := time.Now().Add(10 * time.Second)
	for len(flows) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no flow to shop/web after 10s; output:\n%s", stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
		flows = getFlows(t, base, "to:pod=shop/web", "protocol=icmp")
	}
	f := flows[0]
	if f.IP.Source != peer.IPv4 || f.IP.Destination != web.IPv4 || f.Destination.PodName != "web" ||
		f.NodeName != "caps" || f.Interface.Name != web.HostVeth.Name {
		t.Errorf("flow %+v", f)
	}

	if _, err := os.Stat(filepath.Join(pin, "events")); err != nil {
		t.Errorf("while running, the ring buffer is not pinned: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("collector exited with %v after SIGTERM; output:\n%s", waitErr, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("collector still running 10s after SIGTERM; output:\n%s", stderr.String())
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(pin)
		t.Errorf("pin directory %s left after SIGTERM (stat: %v, entries %v)", pin, err, entries)
	}
}

// dropAllBut is capsh's --drop list: every capability of the kernel except keep.
func dropAllBut(t *testing.T, keep ...int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var drop []string
next:
	for c := 0; c <= last; c++ {
		for _, k := range keep {
			if c == k {
				continue next
			}
		}
		drop = append(drop, strconv.Itoa(c))
	}
	return strings.Join(drop, ",")
}

// capEff reads the CapEff line of a /proc/<pid>/status text.
func capEff(t *testing.T, status string) uint64 {
	t.Helper()
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in %q", status)
	return 0
}

func getFlows(t *testing.T, base string, chips ...string) []api.Flow {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/flows?" + url.Values{"all": {"1"}, "filter": chips}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET flows: %s %v: %s", resp.Status, err, body)
	}
	var out []api.Flow
	for line := range bytes.Lines(body) {
		var f api.Flow
		if err := api.ParseJSON(bytes.TrimSpace(line), &f); err != nil {
			t.Fatalf("parse %s: %v", line, err)
		}
		out = append(out, f)
	}
	return out
}
