package access

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// connectEnv makes the test binary a client that only connects to the
// socket it names and exits 0 on success, 3 when refused.
const connectEnv = "PERISCOPE_ACCESS_TEST_CONNECT"

func TestMain(m *testing.M) {
	if path := os.Getenv(connectEnv); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// connectAs connects to path as uid:gid, in a child process: a copy of the
// test binary in bin (which the user can run).
func connectAs(t *testing.T, bin, path string, uid, gid uint32) error {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), connectEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "permission denied") {
		t.Fatalf("the client as %d:%d: %v: %s", uid, gid, err, out)
	}
	return err
}

// The socket's file permissions decide who may call: its owner and group,
// no one else.
func TestTheSocketLetsInOnlyItsOwnerAndGroup(t *testing.T) {
	labtest.RequireRoot(t)
	dir := t.TempDir()
	// The test's other user must reach the socket, so that its own mode
	// decides.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "run", "collector.sock")
	ln, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.NotFoundHandler())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != SocketMode || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want a socket with %o", fi.Mode(), SocketMode)
	}
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := connectAs(t, bin, path, nobody, nobody); err == nil {
		t.Error("a user neither owner nor in the socket's group connected")
	}
	if err := os.Chown(path, 0, nobody); err != nil {
		t.Fatal(err)
	}
	if err := connectAs(t, bin, path, nobody, nobody); err != nil {
		t.Errorf("a member of the socket's group could not connect: %v", err)
	}
}

func TestListenSocketReplacesAStaleSocketButNotALiveOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenSocket(path); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("a second listener on a live socket: %v, want refused", err)
	}
	// A socket file left behind by a crash: nothing listens on it.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = ListenSocket(path)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the socket outlived its listener: %v", err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenSocket(path); err == nil {
		t.Error("a regular file in the way was replaced")
	}
}
