// Package chtest starts a real clickhouse-server for tests: a child process
// on free loopback ports with a temporary data directory and a minimal
// generated configuration. It is for tests only and must not be imported by
// production code.
package chtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// Binaries the harness uses; tests skip (outside CI) or fail (in CI) without them.
const (
	ServerBinary = "clickhouse-server"
	ClientBinary = "clickhouse-client"
)

// startTimeout bounds how long a start may take until the server answers.
const startTimeout = 60 * time.Second

// Server is a clickhouse-server child process owned by one test. Stop and
// Start may be called repeatedly: the data directory and ports stay the same.
type Server struct {
	tb       testing.TB
	Dir      string // data, config and logs
	TCPPort  int    // native protocol
	HTTPPort int
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start starts a server for tb and stops it in tb.Cleanup. Without
// clickhouse-server it skips outside CI and fails in CI.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if _, err := exec.LookPath(ServerBinary); err != nil {
		labtest.SkipOrFail(tb, "clickhouse-server is not installed (apt-get install clickhouse-server)")
	}
	dir := tb.TempDir()
	s := &Server{tb: tb, Dir: dir, TCPPort: freePort(tb), HTTPPort: freePort(tb)}
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(s.config()), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	s.Start()
	return s
}

// Addr is the native protocol's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.TCPPort) }

// DSN is a DSN for database db on this server.
func (s *Server) DSN(db string) string { return "tcp://" + s.Addr() + "?database=" + db }

// Start starts the server (again) and waits until it answers.
func (s *Server) Start() {
	s.tb.Helper()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(ServerBinary, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that started the server exits, not
	// the process: Go ends a thread whose goroutine exits locked to it
	// (netlab's namespace switches), which killed the server mid-test. The
	// server is started from a goroutine that holds its thread until the
	// server has exited.
	exited, started := make(chan struct{}), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		s.tb.Fatalf("start %s: %v", ServerBinary, err)
	}
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	for {
		if err := s.ping(); err == nil {
			return
		}
		select {
		case <-s.exited:
			s.cmd = nil
			s.tb.Fatalf("clickhouse-server exited during start:\n%s", s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.tb.Fatalf("clickhouse-server did not answer within %s:\n%s", startTimeout, s.logTail())
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 20s) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

// Pause freezes the server (SIGSTOP): it keeps its connections open and
// answers nothing, as a hung server would, until Resume.
func (s *Server) Pause() {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Query runs a query with clickhouse-client and returns its trimmed output
// (TSV); it fails the test on an error.
func (s *Server) Query(q string) string {
	s.tb.Helper()
	out, err := s.Client(context.Background(), nil, "--query", q)
	if err != nil {
		s.tb.Fatalf("clickhouse-client %q: %v\n%s", q, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Client runs clickhouse-client against this server with args, feeding it
// stdin when not nil, and returns its combined output.
func (s *Server) Client(ctx context.Context, stdin *os.File, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, ClientBinary, append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(s.TCPPort)}, args...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	return cmd.CombinedOutput()
}

func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := s.Client(ctx, nil, "--query", "SELECT 1")
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		return fmt.Errorf("not ready: %v %s", err, out)
	}
	return nil
}

func (s *Server) logTail() string {
	var b strings.Builder
	for _, name := range []string{"stdout.log", "server.err.log"} {
		data, _ := os.ReadFile(filepath.Join(s.Dir, "log", name))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, data)
	}
	return b.String()
}

func (s *Server) config() string {
	return fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>%[1]s/log/server.log</log>
    <errorlog>%[1]s/log/server.err.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>64</max_concurrent_queries>
</yandex>
`, s.Dir, s.TCPPort, s.HTTPPort)
}

const usersXML = `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`

// freePort asks the kernel for a free loopback TCP port. Another process may
// take it before the server does; the start then fails loudly.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
