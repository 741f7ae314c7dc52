package periscopetest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api/apitest"
)

// HealthTimeout is how long Start waits for /healthz. Verifying the
// datapath's programs takes about 4 CPU-seconds; on a loaded 2-core
// machine that, with Envoy and ClickHouse starting beside it, is 15-60 s
// of wall time.
const HealthTimeout = 90 * time.Second

// stopTimeout is how long a stopped server has to exit after SIGTERM
// before it is killed.
const stopTimeout = 30 * time.Second

// Server is a periscope server (collector or relay) the test runs.
type Server struct {
	// Addr is its API's TCP address (host:port); URL is http://Addr.
	Addr, URL string
	// Socket is the path of its API socket.
	Socket string
	// Output is what it wrote to stdout and stderr.
	Output *Output
	exited chan struct{}
}

// Exited is closed once the server's process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// SocketClient is a client whose every request goes to the server's API
// socket, whatever the URL's host (http://localhost/... will do).
func (s *Server) SocketClient() *http.Client { return apitest.SocketClient(s.Socket) }

// Start runs `bin command --listen <a free loopback address> --api-socket
// <a path of its own> args...` with env added to the test's environment,
// until the test ends (SIGTERM, then SIGKILL after 30 s; its output is
// logged if the test failed), and returns it once GET /healthz answers
// 200 (WaitHealthy).
func Start(t *testing.T, bin, command string, env []string, args ...string) *Server {
	t.Helper()
	s := &Server{Addr: FreeAddr(t), Socket: socketPath(t, command), Output: &Output{}, exited: make(chan struct{})}
	s.URL = "http://" + s.Addr
	cmd := exec.Command(bin, append([]string{command, "--listen", s.Addr, "--api-socket", s.Socket}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = s.Output, s.Output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start periscope %s: %v", command, err)
	}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("periscope %s output:\n%s", command, s.Output.String())
		}
	})
	WaitHealthy(t, "periscope "+command, s.URL, s.exited, s.Output)
	return s
}

// WaitHealthy waits until GET url/healthz answers 200, for up to
// HealthTimeout. A server (what) that exits first (exited is closed) or
// does not answer in time fails the test with its output.
func WaitHealthy(tb testing.TB, what, url string, exited <-chan struct{}, out *Output) {
	tb.Helper()
	deadline := time.Now().Add(HealthTimeout)
	for !healthy(url) {
		select {
		case <-exited:
			tb.Fatalf("%s exited before it answered; output:\n%s", what, out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not answer %s/healthz within %s; output:\n%s", what, url, HealthTimeout, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthy says whether GET url/healthz answers 200.
func healthy(url string) bool {
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// FreeAddr is a loopback address with a port free right now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// socketPath is a path for a server's API socket, short enough for a Unix
// socket's address whatever the test's name (t.TempDir's may not be),
// removed when the test ends.
func socketPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "psc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name+".sock")
}
