package hubble

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/relay"
)

// Running the real hubble CLI (scripts/hubble-cli.sh builds it) against a
// test server, and reading what it prints, for cli_test.go.

// hubbleCLIEnv names the hubble binary; `make test` sets it. Without it the
// tests look for bin/hubble at the module root.
const hubbleCLIEnv = "PERISCOPE_HUBBLE_CLI"

// cliTimeout bounds one CLI run, so a hung CLI fails its test.
const cliTimeout = 60 * time.Second

// hubbleCLI runs the hubble binary against one server, isolated from the
// user's hubble config.
type hubbleCLI struct {
	bin, server string
	env         []string
}

// newHubbleCLI finds the hubble binary, before a test starts any server; it
// skips outside CI and fails in CI when there is none. Set server next.
func newHubbleCLI(t *testing.T) *hubbleCLI {
	t.Helper()
	bin := os.Getenv(hubbleCLIEnv)
	if bin == "" {
		if root, err := moduleRoot(); err == nil {
			bin = filepath.Join(root, "bin", "hubble")
		}
	}
	if fi, err := os.Stat(bin); bin == "" || err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		labtest.SkipOrFail(t, fmt.Sprintf("no hubble CLI at %q (%s or bin/hubble): build it with `make hubble-cli` (scripts/hubble-cli.sh)", bin, hubbleCLIEnv))
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUBBLE_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return &hubbleCLI{bin: bin, env: env}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func (h *hubbleCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	args = append(args, "--server", h.server)
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs one hubble command to its end and returns its stdout; an error
// carries its stderr.
func (h *hubbleCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := h.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hubble %s: no answer within %v (stdout %q, stderr %q)", strings.Join(args, " "), cliTimeout, stdout.String(), stderr.String())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("hubble %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// mustRun is run that fails the test on an error.
func (h *hubbleCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.run(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parseFlowsJSON reads `hubble observe -o json` output: one GetFlowsResponse
// per line in proto3's JSON mapping.
func parseFlowsJSON(t *testing.T, out string) []*observerpb.GetFlowsResponse {
	t.Helper()
	var resps []*observerpb.GetFlowsResponse
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		resp := &observerpb.GetFlowsResponse{}
		if err := protojson.Unmarshal([]byte(line), resp); err != nil {
			t.Fatalf("hubble output line %q: %v", line, err)
		}
		resps = append(resps, resp)
	}
	return resps
}

// cliFlowIDs are the numbers of the flows in `hubble observe -o json` output.
func cliFlowIDs(t *testing.T, out string) []int {
	t.Helper()
	var ids []int
	for _, resp := range parseFlowsJSON(t, out) {
		if resp.GetFlow() == nil {
			t.Fatalf("not a flow: %v", resp)
		}
		ids = append(ids, uuidID(t, resp.GetFlow().GetUuid()))
	}
	return ids
}

// serveAddr runs the Observer service for b and returns its address.
func serveAddr(t *testing.T, b Backend) string {
	t.Helper()
	return serveAddrWith(t, b, Options{})
}

// serveAddrWith runs the Observer service for b with o until the test
// ends, failing it if Serve fails, and returns its address.
func serveAddrWith(t *testing.T, b Backend, o Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, b, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startRelay runs a relay over peers and waits until it has them all.
func startRelay(t *testing.T, peers []string) *relay.Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Options{Peers: peers, Listener: ln, MergeWindow: 20 * time.Millisecond,
		ProbeInterval: 50 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "relay", r)
	waitFor(t, "peers connected", func() bool { return r.Status().NumConnectedNodes == len(peers) })
	return r
}

// cliNodes runs `hubble list nodes -o json`.
func cliNodes(t *testing.T, h *hubbleCLI) []*observerpb.Node {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(h.mustRun(t, "list", "nodes", "-o", "json")), &raw); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*observerpb.Node, len(raw))
	for i, r := range raw {
		nodes[i] = &observerpb.Node{}
		if err := protojson.Unmarshal(r, nodes[i]); err != nil {
			t.Fatalf("node %s: %v", r, err)
		}
	}
	return nodes
}

// grouped writes n with thousands separators, as hubble prints counts.
func grouped(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// following is a hubble command that follows (observe -f), read line by
// line as it prints.
type following struct {
	what   string
	ctx    context.Context
	cancel context.CancelFunc
	cmd    *exec.Cmd
	stderr bytes.Buffer
	lines  chan string
}

// follow starts `hubble args...`, a command that prints until it is
// stopped: stop, the test's end, or cliTimeout after its start.
func (h *hubbleCLI) follow(t *testing.T, args ...string) *following {
	t.Helper()
	f := &following{what: "hubble " + strings.Join(args, " "), lines: make(chan string)}
	f.ctx, f.cancel = context.WithTimeout(context.Background(), cliTimeout)
	t.Cleanup(f.cancel)
	f.cmd = h.command(f.ctx, args...)
	f.cmd.Stderr = &f.stderr
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
	}()
	return f
}

// next is the next line the command prints; the command ending first, or
// printing nothing before its time is up, fails the test.
func (f *following) next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-f.lines:
		if !ok {
			t.Fatalf("%s ended early: %s", f.what, f.stderr.String())
		}
		return line
	case <-f.ctx.Done():
		t.Fatalf("%s printed nothing within %v: %s", f.what, cliTimeout, f.stderr.String())
	}
	return ""
}

// stop kills the command (a follow never ends by itself) and returns what
// it printed after the lines next read.
func (f *following) stop() []string {
	f.cancel()
	_ = f.cmd.Wait()
	var rest []string
	for line := range f.lines {
		rest = append(rest, line)
	}
	return rest
}
