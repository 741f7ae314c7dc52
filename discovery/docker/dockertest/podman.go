package dockertest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// StartPodman runs `podman system service` for the test, with its own
// storage, run root, events log and CNI configuration in a temporary
// directory, its default network on a new lab's bridge (addresses from the
// upper half of Lab.IPv4Net, no firewall or masquerade rules), and the
// busybox image imported. It stops it and removes everything when the
// test ends. Without podman or root the test skips, or fails in CI.
func StartPodman(t *testing.T) *Engine {
	t.Helper()
	labtest.RequireRoot(t)
	podman, err := exec.LookPath("podman")
	if err != nil {
		labtest.SkipOrFail(t, fmt.Sprintf("podman not found (apt-get install podman, or make deps): %v", err))
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		labtest.SkipOrFail(t, fmt.Sprintf("CNI plugins not found (apt-get install containernetworking-plugins): %v", err))
	}
	lab := labtest.NewLab(t)
	dir, err := os.MkdirTemp("", "ppm")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "containers.conf")
	e := &Engine{
		Name: "podman", Socket: filepath.Join(dir, "podman.sock"), Dir: dir, Lab: lab, cli: podman,
		cliArgs: []string{"--root=" + filepath.Join(dir, "root"), "--runroot=" + filepath.Join(dir, "run"), "--storage-driver=vfs"},
		env:     []string{"CONTAINERS_CONF=" + conf},
		log:     filepath.Join(dir, "podman.log"),
		done:    make(chan struct{}),
	}
	t.Cleanup(func() { e.stop(t) })

	cniDir := filepath.Join(dir, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The default network ("podman") on the lab's bridge, whose address is
	// the gateway.
	network := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "podman",
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": lab.Bridge.Name, "isGateway": false, "ipMasq": false, "hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(dir, "ipam"),
				"ranges": []any{[]any{map[string]any{
					"subnet":     lab.IPv4Net.String(),
					"rangeStart": netlabHost(lab, 128).String(),
					"rangeEnd":   netlabHost(lab, 254).String(),
					"gateway":    lab.HostIPv4.String(),
				}}},
			},
		}},
	}
	data, err := json.Marshal(network)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cniDir, "podman.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	nofile, nproc := containerLimits(t)
	confText := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
runtime = "runc"
tmp_dir = %q

[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = %q
`, nofile, nofile, nproc, nproc, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), cniDir)
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(e.cliArgs, "system", "service", "--time=0", "unix://"+e.Socket)
	e.start(t, exec.Command(podman, args...))
	return e
}

// containerLimits are the open-files and processes limits containers get.
// Podman asks for more than the test's own by default, which fails
// without CAP_SYS_RESOURCE; and as root it lowers its own process limit to
// 32768 when it cannot raise it, so no container may ask for more.
func containerLimits(t *testing.T) (nofile, nproc uint64) {
	t.Helper()
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	nofile = l.Max
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &l); err != nil {
		t.Fatal(err)
	}
	return nofile, min(l.Max, 32768)
}
