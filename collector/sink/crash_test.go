package sink

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// fileSink appends the numbers (seqOf) of the flows it stores to a file,
// one write(2) per batch, so that what it stored outlives its process. It
// reports each stored batch to stored, then waits ackDelay before it
// returns: a process killed meanwhile leaves a stored batch it never
// acknowledged. WriteUncertain skips the flows the file holds.
type fileSink struct {
	path     string
	down     bool
	ackDelay time.Duration
	stored   func(n int)

	mu    sync.Mutex
	dedup uint64
}

func (s *fileSink) Name() string { return "file" }

func (s *fileSink) Write(_ context.Context, batch []api.Flow) error {
	if s.down {
		return errSinkDown
	}
	b := make([]byte, 0, 8*len(batch))
	for i := range batch {
		b = binary.LittleEndian.AppendUint64(b, seqOf(&batch[i]))
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	f.Close()
	if err != nil {
		return err
	}
	if s.stored != nil {
		s.stored(len(batch))
	}
	time.Sleep(s.ackDelay)
	return nil
}

func (s *fileSink) WriteUncertain(ctx context.Context, batch []api.Flow) error {
	have := map[uint64]bool{}
	for _, n := range readStored(s.path) {
		have[n] = true
	}
	var rest []api.Flow
	for i := range batch {
		if !have[seqOf(&batch[i])] {
			rest = append(rest, batch[i])
		}
	}
	s.mu.Lock()
	s.dedup += uint64(len(batch) - len(rest))
	s.mu.Unlock()
	if len(rest) == 0 {
		return nil
	}
	return s.Write(ctx, rest)
}

func (s *fileSink) Deduplicated() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dedup
}

func readStored(path string) []uint64 {
	b, _ := os.ReadFile(path)
	var out []uint64
	for len(b) >= 8 {
		out = append(out, binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	return out
}

const (
	crashChildDir  = "PERISCOPE_SINK_CRASH_DIR"
	crashChildMode = "PERISCOPE_SINK_CRASH_MODE"
)

// crashChild is the process the test kills: a spooled queue in front of a
// fileSink, offered numbered flows as a steady stream. It prints
// "offered N" after every 100 flows and "stored N" for every batch stored.
func crashChild() {
	dir, mode := os.Getenv(crashChildDir), os.Getenv(crashChildMode)
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	s := &fileSink{path: filepath.Join(dir, "stored"), down: mode == "down", ackDelay: 2 * time.Second,
		stored: func(n int) { say("stored %d", n) }}
	o := QueueOptions{Capacity: 2000, BatchSize: 100, FlushInterval: 10 * time.Millisecond,
		RetryBackoff: 10 * time.Millisecond, SpoolDir: filepath.Join(dir, "spool"), Logger: quietLogger()}
	q, err := NewQueue(s, o)
	if err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	go q.Run(context.Background())
	deadline := time.Now().Add(2 * time.Minute)
	for i := uint64(0); time.Now().Before(deadline); i++ {
		f := testFlow(i)
		if !q.Offer(&f) {
			say("refused %d", i)
			os.Exit(3)
		}
		if i%100 == 99 {
			say("offered %d", i+1)
			for q.Stats().Queued > o.Capacity/2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	say("not killed")
	os.Exit(4)
}

// TestAKilledProcessLosesNothingItAccepted kills (SIGKILL) a process whose
// spooled queue holds flows in memory, in the journal and in spool
// segments, and starts a queue on its spool directory: every flow the
// killed process accepted is written exactly once, in order, including a
// batch it had stored but not acknowledged when it died.
func TestAKilledProcessLosesNothingItAccepted(t *testing.T) {
	if os.Getenv(crashChildDir) != "" {
		crashChild()
		return
	}
	type killCase struct {
		name, mode string
		killAt     func(offered uint64, line string) bool
	}
	var cases []killCase
	// At several moments: whatever the queue is doing (spooling a batch,
	// retrying the sink) when the kill comes.
	for _, n := range []uint64{2500, 5200, 7900} {
		cases = append(cases, killCase{name: fmt.Sprintf("the sink down: flows in memory, journal and spool (%d)", n),
			mode: "down", killAt: func(offered uint64, _ string) bool { return offered >= n }})
	}
	cases = append(cases, killCase{name: "the sink storing a batch it has not acknowledged", mode: "up",
		killAt: func(offered uint64, line string) bool { return offered >= 1000 && strings.HasPrefix(line, "stored") }})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestAKilledProcessLosesNothingItAccepted$")
			cmd.Env = append(os.Environ(), crashChildDir+"="+dir, crashChildMode+"="+tc.mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var offered uint64
			sc := bufio.NewScanner(stdout)
			killed := false
			for sc.Scan() {
				line := sc.Text()
				if n, ok := strings.CutPrefix(line, "offered "); ok {
					offered, _ = strconv.ParseUint(n, 10, 64)
				} else if !strings.HasPrefix(line, "stored ") {
					t.Fatalf("child: %s", line)
				}
				if tc.killAt(offered, line) {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					killed = true
					break
				}
			}
			_ = cmd.Wait()
			if !killed {
				t.Fatalf("the child ended before it was killed (%d offered)", offered)
			}
			stored := readStored(filepath.Join(dir, "stored"))
			t.Logf("killed after %d flows offered, %d stored", offered, len(stored))

			s := &fileSink{path: filepath.Join(dir, "stored")}
			q := newTestQueue(t, s, QueueOptions{Capacity: 2000, BatchSize: 100, FlushInterval: 10 * time.Millisecond,
				SpoolDir: filepath.Join(dir, "spool")})
			st := drainAll(t, q)
			all := readStored(filepath.Join(dir, "stored"))
			if uint64(len(all)) < offered {
				t.Fatalf("%d flows stored, but the killed process had accepted at least %d", len(all), offered)
			}
			for i, n := range all {
				if n != uint64(i) {
					t.Fatalf("stored flow %d is number %d: a flow lost, repeated or out of order", i, n)
				}
			}
			if st.Recovered != uint64(len(all)-len(stored))+st.Deduplicated || st.Unrecovered != 0 || st.Corrupt != 0 {
				t.Errorf("stats %+v: want every flow the killed process left recovered (%d stored before, %d after)",
					st, len(stored), len(all))
			}
			if tc.mode == "up" && st.Deduplicated == 0 {
				t.Errorf("stats %+v: the batch stored when the process was killed was not found stored", st)
			}
		})
	}
}
