package dockertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// Image is the name of the busybox image every Engine has.
const Image = "periscope-busybox:test"

// Engine is a running container engine serving the Docker Engine API.
type Engine struct {
	// Name is "docker" or "podman".
	Name string
	// Socket is the path of its API socket.
	Socket string
	// Dir holds its data, state and log.
	Dir string
	// Lab's bridge is the engine's default bridge network; containers get
	// addresses from the upper half of Lab.IPv4Net.
	Lab *netlab.Lab

	// cli runs the engine's CLI with cliArgs first and env added.
	cli     string
	cliArgs []string
	env     []string
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
}

// Binaries returns the paths of dockerd and the docker CLI, or an error
// saying what is missing.
func Binaries() (dockerd, cli string, err error) {
	if dockerd, err = exec.LookPath("dockerd"); err != nil {
		return "", "", fmt.Errorf("dockerd not found (apt-get install docker.io, or make deps): %w", err)
	}
	if cli, err = exec.LookPath("docker"); err != nil {
		return "", "", fmt.Errorf("docker CLI not found (apt-get install docker.io, or make deps): %w", err)
	}
	return dockerd, cli, nil
}

// Start runs dockerd for the test, on a new lab's bridge, with the busybox
// image imported, and stops it (removing its containers, mounts and files)
// when the test ends. Without dockerd or root the test skips, or fails in
// CI.
func Start(t *testing.T) *Engine {
	t.Helper()
	labtest.RequireRoot(t)
	dockerd, cli, err := Binaries()
	if err != nil {
		labtest.SkipOrFail(t, err.Error())
	}
	lab := labtest.NewLab(t)
	// Short: containerd's sockets live under it, and a Unix socket's path
	// has at most 107 bytes.
	dir, err := os.MkdirTemp("", "pdk")
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{
		Name: "docker", Socket: filepath.Join(dir, "docker.sock"), Dir: dir, Lab: lab,
		cli: cli, env: []string{"DOCKER_HOST=unix://" + filepath.Join(dir, "docker.sock"), "DOCKER_CONFIG=" + filepath.Join(dir, "cli")},
		log: filepath.Join(dir, "dockerd.log"), done: make(chan struct{}),
	}
	t.Cleanup(func() { e.stop(t) })
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	upper := netip.PrefixFrom(netlabHost(lab, 128), 25)
	e.start(t, exec.Command(dockerd,
		"--host=unix://"+e.Socket,
		"--data-root="+filepath.Join(dir, "data"),
		"--exec-root="+filepath.Join(dir, "exec"),
		"--pidfile="+filepath.Join(dir, "dockerd.pid"),
		"--config-file="+filepath.Join(dir, "daemon.json"),
		"--bridge="+lab.Bridge.Name,
		"--fixed-cidr="+upper.String(),
		// The host's firewall and sysctls stay as they are: containers
		// of one bridge talk without them.
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
		"--userland-proxy=false",
		"--shutdown-timeout=2",
	))
	return e
}

// start runs the engine's server, waits until its API answers and imports
// the busybox image.
func (e *Engine) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	log, err := os.Create(e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.cmd = cmd
	e.cmd.Env = append(os.Environ(), e.env...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", e.Name, err)
	}
	go func() { e.cmd.Wait(); log.Close(); close(e.done) }()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for !e.ping(ctx) {
		select {
		case <-e.done:
			t.Fatalf("%s exited before it was ready; its log ends:\n%s", e.Name, e.logTail(30))
		case <-ctx.Done():
			t.Fatalf("%s not ready within 90s; its log ends:\n%s", e.Name, e.logTail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
	rootfs, err := busyboxTar()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.docker(rootfs, "import", "-", Image); err != nil {
		t.Fatal(err)
	}
}

// netlabHost returns the n-th address of the lab's IPv4 subnet.
func netlabHost(lab *netlab.Lab, n int) netip.Addr {
	a := lab.IPv4Net.Masked().Addr().As4()
	a[3] = byte(n)
	return netip.AddrFrom4(a)
}

func (e *Engine) ping(ctx context.Context) bool {
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.Socket)
	}}, Timeout: 2 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Docker runs the engine's CLI (docker or podman, whose commands the tests
// use alike) and returns its output.
func (e *Engine) Docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.docker(nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *Engine) docker(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, append(slices.Clone(e.cliArgs), args...)...)
	cmd.Env = append(os.Environ(), e.env...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", e.Name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// stop removes the containers, stops the server, unmounts what it left
// mounted under Dir and removes Dir.
func (e *Engine) stop(t *testing.T) {
	if e.cmd != nil && e.cmd.Process != nil {
		if ids, err := e.docker(nil, "ps", "-aq"); err == nil && ids != "" {
			if _, err := e.docker(nil, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				t.Errorf("remove containers: %v", err)
			}
		}
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s; killed", e.Name)
			e.cmd.Process.Kill()
			<-e.done
		}
	}
	if err := unmountUnder(e.Dir); err != nil {
		t.Errorf("unmount under %s: %v", e.Dir, err)
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		t.Errorf("remove %s: %v", e.Dir, err)
	}
}

func (e *Engine) logTail(n int) string {
	data, _ := os.ReadFile(e.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// busyboxTar is a root file system: busybox-static as /bin/busybox and
// the applets the tests use as links to it.
func busyboxTar() (io.Reader, error) {
	const path = "/bin/busybox"
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("busybox-static (apt-get install busybox-static): %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			f.Close()
			return nil, fmt.Errorf("%s is linked dynamically: install busybox-static", path)
		}
	}
	f.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	for _, applet := range []string{"sh", "sleep", "ping", "nc", "ip", "cat", "echo"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
